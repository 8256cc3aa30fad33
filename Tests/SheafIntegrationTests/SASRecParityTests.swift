import Foundation
import Testing

/// Sheaf's SASRec against RecBole's own `SASRec` class with the same weights (tools/sasrec_parity.py):
/// every item's score for 20 users of the demo store, within 1e-3, and the same top-10 lists.
///
/// Needs what the comparison scripts need and the package does not hold: a Python with torch, RecBole
/// 1.2.1 and safetensors (`TORCH_PYTHON`, default /tmp/torchenv/bin/python), the demo's store and its
/// SASRec model (`tools/demo` writes both), and a release `sheaf` (the script runs it).
@Suite struct SASRecParityTests {
    static let python = ProcessInfo.processInfo.environment["TORCH_PYTHON"] ?? "/tmp/torchenv/bin/python"
    static let store = repositoryRoot + "/data/demo-store"
    static let model = repositoryRoot + "/data/demo-store-sasrec"
    static let sheaf = repositoryRoot + "/.build/release/sheaf"

    static let pythonReady: Bool = {
        guard FileManager.default.isExecutableFile(atPath: python) else { return false }
        return runProcess(python, ["-c", "import torch, recbole, safetensors"])?.status == 0
    }()
    static let dataReady = FileManager.default.fileExists(atPath: model + "/model.safetensors")
        && FileManager.default.fileExists(atPath: store + "/data.mdb")
        && FileManager.default.isExecutableFile(atPath: sheaf)

    @Test(
        .enabled(if: pythonReady, "needs torch, recbole 1.2.1 and safetensors in \(python) (see tools/recbole-sasrec)"),
        .enabled(if: dataReady, "needs tools/demo's data/demo-store, data/demo-store-sasrec and a release sheaf"))
    func scoresMatchRecBoleWithTheSameWeights() throws {
        let run = try #require(runProcess(Self.python, [
            repositoryRoot + "/tools/sasrec_parity.py", "--store", Self.store, "--model", Self.model, "--users", "20",
        ]))
        try #require(run.status == 0, "sasrec_parity failed:\n\(run.stderr.suffix(3000))")
        let lines = String(decoding: run.stdout, as: UTF8.self).split(separator: "\n")
        let last = try #require(lines.last)
        let result = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        #expect(result["users"] as? Int == 20)
        #expect(result["items"] as? Int == 1682)
        #expect((result["max_abs_score_difference"] as? Double ?? 1) <= 1e-3)
        #expect(result["same_top10"] as? Int == 20)
    }
}

import Foundation
import Testing

/// The study drivers' own Python logic under pytest (tools/tests): the run records that let a study
/// span machines (tools/study_records.py).
@Suite struct ToolScriptTests {
    @Test(.enabled(if: PythonEnvironment.canImport("pytest"), PythonEnvironment.missing("pytest")))
    func studyRecordsPassTheirTests() throws {
        let run = try #require(runProcess(
            PythonEnvironment.python!, ["-m", "pytest", "-q", "-p", "no:cacheprovider", repositoryRoot + "/tools/tests"]))
        let output = String(decoding: run.stdout, as: UTF8.self)
        #expect(run.status == 0, "pytest:\n\(output)\n\(run.stderr)")
        #expect(output.contains("5 passed"), "\(output)")
    }
}

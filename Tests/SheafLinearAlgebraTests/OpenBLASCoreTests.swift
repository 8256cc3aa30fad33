import Foundation
import Testing

@testable import SheafLinearAlgebra

/// The core selection's decisions, from faked environments, cores and CPU features (no process is
/// re-executed here; `SheafCLITests.CoreSelectionProcessTests` runs the real thing).
@Suite struct OpenBLASCoreSelectionTests {
    let avx512 = CPUFeatures(avx2: true, fma: true, avx512f: true, avx512VLBWDQ: true)
    let bf16 = CPUFeatures(avx2: true, fma: true, avx512f: true, avx512VLBWDQ: true, avx512BF16: true)
    let avx2 = CPUFeatures(avx2: true, fma: true)
    let passing = OpenBLASCore.SelfCheck(passed: true, entriesChecked: 3, failure: nil, milliseconds: 1)
    let failing = OpenBLASCore.SelfCheck(passed: false, entriesChecked: 1, failure: "wrong", milliseconds: 1)

    /// `nextStep` with a check that records whether it ran.
    func step(
        _ env: [String: String], core: String, _ features: CPUFeatures, check: OpenBLASCore.SelfCheck? = nil
    ) -> (OpenBLASCore.Step, checked: Bool) {
        var checked = false
        let s = OpenBLASCore.nextStep(environment: env, currentCore: core, features: features) {
            checked = true
            return check ?? passing
        }
        return (s, checked)
    }

    @Test func candidatesFollowTheFeatures() {
        #expect(OpenBLASCore.candidates(for: bf16) == ["Cooperlake", "SkylakeX", "Haswell"])
        #expect(OpenBLASCore.candidates(for: avx512) == ["SkylakeX", "Haswell"])
        #expect(OpenBLASCore.candidates(for: avx2) == ["Haswell"])
        // AVX-512F without VL/BW/DQ is not enough for the SkylakeX kernels.
        #expect(OpenBLASCore.candidates(for: CPUFeatures(avx2: true, fma: true, avx512f: true)) == ["Haswell"])
        #expect(OpenBLASCore.candidates(for: CPUFeatures(avx2: true)) == [])
        #expect(OpenBLASCore.candidates(for: CPUFeatures()) == [])
    }

    @Test func genericMeansNoAVX2KernelsOnAnAVX2CPU() {
        #expect(OpenBLASCore.isGeneric("Prescott", on: avx2))
        #expect(OpenBLASCore.isGeneric("Sandybridge", on: bf16))
        #expect(!OpenBLASCore.isGeneric("SkylakeX", on: bf16))
        #expect(!OpenBLASCore.isGeneric("haswell", on: avx2))
        #expect(!OpenBLASCore.isGeneric("Zen", on: avx2))
        #expect(!OpenBLASCore.isGeneric("Prescott", on: CPUFeatures()))  // nothing faster to run
    }

    @Test func aUsersSettingAlwaysWins() {
        let (s, checked) = step(["OPENBLAS_CORETYPE": "Prescott"], core: "Prescott", bf16)
        #expect(s == .keep(.userSet(core: "Prescott")))
        #expect(!checked)
        // Even with the test hook that pretends OpenBLAS chose a generic core.
        let (s2, _) = step(["OPENBLAS_CORETYPE": "Haswell", "SHEAF_TEST_BLAS_CORE": "Prescott"], core: "Haswell", bf16)
        #expect(s2 == .keep(.userSet(core: "Haswell")))
    }

    @Test func aFastAutomaticChoiceIsKept() {
        let (s, checked) = step([:], core: "SkylakeX", bf16)
        #expect(s == .keep(.automatic(core: "SkylakeX")))
        #expect(!checked)
        #expect(step([:], core: "Prescott", CPUFeatures()).0 == .keep(.automatic(core: "Prescott")))
    }

    @Test func aGenericChoiceReexecutesWithTheBestCore() {
        #expect(step([:], core: "Prescott", bf16).0
            == .reexecute(["OPENBLAS_CORETYPE": "Cooperlake", "SHEAF_BLAS_SELECTION": "from=Prescott;tried=Cooperlake"]))
        #expect(step([:], core: "Prescott", avx2).0
            == .reexecute(["OPENBLAS_CORETYPE": "Haswell", "SHEAF_BLAS_SELECTION": "from=Prescott;tried=Haswell"]))
        // The test hook stands in for OpenBLAS's detection.
        #expect(step(["SHEAF_TEST_BLAS_CORE": "Prescott"], core: "SkylakeX", avx512).0
            == .reexecute(["OPENBLAS_CORETYPE": "SkylakeX", "SHEAF_BLAS_SELECTION": "from=Prescott;tried=SkylakeX"]))
    }

    @Test func theChosenCoreIsKeptOnlyAfterTheSelfCheck() {
        let env = ["OPENBLAS_CORETYPE": "Cooperlake", "SHEAF_BLAS_SELECTION": "from=Prescott;tried=Cooperlake"]
        let (s, checked) = step(env, core: "Cooperlake", bf16)
        #expect(checked)
        #expect(s == .keep(.reselected(from: "Prescott", to: "Cooperlake", failed: [], check: passing)))
    }

    @Test func aFailedCheckFallsToTheNextCoreDown() {
        let env = ["OPENBLAS_CORETYPE": "Cooperlake", "SHEAF_BLAS_SELECTION": "from=Prescott;tried=Cooperlake"]
        let (s, checked) = step(env, core: "Cooperlake", bf16, check: failing)
        #expect(checked)
        #expect(s == .reexecute(["OPENBLAS_CORETYPE": "SkylakeX", "SHEAF_BLAS_SELECTION": "from=Prescott;tried=Cooperlake,SkylakeX"]))
        // The next one passes: kept, and the failure is remembered.
        let env2 = ["OPENBLAS_CORETYPE": "SkylakeX", "SHEAF_BLAS_SELECTION": "from=Prescott;tried=Cooperlake,SkylakeX"]
        #expect(step(env2, core: "SkylakeX", bf16).0
            == .keep(.reselected(from: "Prescott", to: "SkylakeX", failed: ["Cooperlake"], check: passing)))
    }

    @Test func aCoreOpenBLASDidNotLoadCountsAsFailed() {
        // OpenBLAS ignores a core name it does not know and keeps its own choice.
        let env = ["OPENBLAS_CORETYPE": "Cooperlake", "SHEAF_BLAS_SELECTION": "from=Prescott;tried=Cooperlake"]
        let (s, checked) = step(env, core: "Prescott", bf16)
        #expect(!checked)
        #expect(s == .reexecute(["OPENBLAS_CORETYPE": "SkylakeX", "SHEAF_BLAS_SELECTION": "from=Prescott;tried=Cooperlake,SkylakeX"]))
    }

    @Test func whenEveryCoreFailsOpenBLASsOwnChoiceRuns() {
        let env = ["OPENBLAS_CORETYPE": "Haswell", "SHEAF_BLAS_SELECTION": "from=Prescott;tried=SkylakeX,Haswell"]
        let (s, _) = step(env, core: "Haswell", avx512, check: failing)
        #expect(s == .reexecute(["OPENBLAS_CORETYPE": nil, "SHEAF_BLAS_SELECTION": "from=Prescott;tried=SkylakeX,Haswell;done"]))
        let (final, checked) = step(["SHEAF_BLAS_SELECTION": "from=Prescott;tried=SkylakeX,Haswell;done"], core: "Prescott", avx512)
        #expect(!checked)
        #expect(final == .keep(.fellBack(core: "Prescott", failed: ["SkylakeX", "Haswell"])))
    }

    @Test func featureNamesRoundTrip() {
        #expect(CPUFeatures(names: bf16.description.replacingOccurrences(of: " ", with: ",")) == bf16)
        #expect(CPUFeatures(names: "none") == CPUFeatures())
        #expect(CPUFeatures(names: "AVX2, fma") == avx2)
        #expect(CPUFeatures().description == "none")
    }

    /// The self-check passes on this machine's OpenBLAS, checking every shape it names.
    @Test func selfCheckPassesHere() {
        let c = OpenBLASCore.selfCheck()
        #expect(c.passed, "\(c.failure ?? "")")
        #expect(c.entriesChecked == 512 + 512 + 37 * 53)
    }

    /// The features CPUID reports are consistent: the AVX-512 extensions imply AVX-512F.
    @Test func cpuidIsConsistent() {
        let f = CPUFeatures.current
        if f.avx512VLBWDQ || f.avx512BF16 { #expect(f.avx512f) }
        #expect(!CPUFeatures.brand.isEmpty)
        #expect(!BLAS.coreName.isEmpty)
    }
}

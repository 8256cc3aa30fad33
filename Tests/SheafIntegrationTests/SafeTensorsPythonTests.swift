import Foundation
import SheafFormats
import Testing

/// SheafFormats' safetensors against the Python `safetensors` package.
@Suite struct SafeTensorsPythonTests {
    /// The Python `safetensors` package reads what Sheaf writes, and Sheaf reads what it writes back
    /// (F32 exactly, plus F16, BF16 and F64 tensors it adds).
    @Test(.enabled(if: PythonEnvironment.canImport("numpy", "safetensors"), PythonEnvironment.missing("numpy", "safetensors")))
    func pythonInterop() throws {
        let mine = TemporaryPath(".safetensors"), theirs = TemporaryPath(".safetensors")
        let w: [Float] = (0..<12).map { Float($0) * 0.25 - 1 }
        try SafeTensors.write([("w", [3, 4], w), ("b", [4], [1, -1, 0.5, 3])], metadata: ["by": "sheaf"], to: mine.path)
        let script = """
            import sys, numpy as np
            from safetensors import safe_open
            from safetensors.numpy import load_file, save_file
            t = load_file(sys.argv[1])
            with safe_open(sys.argv[1], "np") as f: meta = f.metadata()
            assert meta == {"by": "sheaf"}, meta
            assert t["w"].dtype == np.float32 and t["w"].shape == (3, 4), (t["w"].dtype, t["w"].shape)
            assert np.array_equal(t["w"].ravel(), np.arange(12, dtype=np.float32) * 0.25 - 1)
            assert np.array_equal(t["b"], np.array([1, -1, 0.5, 3], dtype=np.float32))
            t["w16"] = t["w"].astype(np.float16)
            t["w64"] = t["w"].astype(np.float64)
            t["ids"] = np.arange(5, dtype=np.int64)
            save_file(t, sys.argv[2], metadata={"by": "python"})
            """
        _ = try PythonEnvironment.run(script, [mine.path, theirs.path])

        let r = try SafeTensors.read(path: theirs.path)
        #expect(r.metadata == ["by": "python"])
        #expect(try r.floats("w", shape: [3, 4]).values == w)
        #expect(try r.floats("w16").values == w, "these values are exact in float16")
        #expect(try r.floats("w64").values == w)
        #expect(r.entry("ids")?.dtype == .I64)
        #expect(throws: FormatError.unsupportedDType(path: theirs.path, dtype: "I64 (tensor ids)", expected: "F32, F16, BF16 or F64")) {
            try r.floats("ids")
        }
    }
}

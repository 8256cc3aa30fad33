// `sheaf-fuzz`: the fuzz targets of `SheafFuzzTargets` as one program.
//
// Built by `tools/fuzz` with `-sanitize=fuzzer,address -D SHEAF_LIBFUZZER`: libFuzzer supplies `main`
// and calls `LLVMFuzzerTestOneInput` with its inputs; the target is `$SHEAF_FUZZ_TARGET`.
// In an ordinary build it replays files instead: `sheaf-fuzz TARGET FILE…` runs TARGET on each file
// and prints whether it was accepted (for reproducing a crash libFuzzer saved).
import Foundation
import SheafFuzzTargets

#if SHEAF_LIBFUZZER
    private let target: String = {
        let name = ProcessInfo.processInfo.environment["SHEAF_FUZZ_TARGET"] ?? ""
        guard FuzzTargets.names.contains(name) else {
            fatalError("set SHEAF_FUZZ_TARGET to one of \(FuzzTargets.names.joined(separator: ", "))")
        }
        return name
    }()

    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        _ = FuzzTargets.run(target, UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }

    /// libFuzzer's driver, which its own `main` calls (`FuzzerInterface.h`).
    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    /// The entry point SwiftPM links an executable target to (`main` is defined as `<target>_main`), so
    /// libFuzzer's own `main` is not the one that runs: this one starts libFuzzer's driver.
    @_cdecl("sheaf_fuzz_main")
    public func sheafFuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
        var count = argc
        var vector = argv
        return LLVMFuzzerRunDriver(&count, &vector) { data, size in fuzzOneInput(data, size) }
    }
#else
    @main
    struct Replay {
        static func main() {
            let args = CommandLine.arguments.dropFirst()
            guard let name = args.first, FuzzTargets.names.contains(name) else {
                FileHandle.standardError.write(Data("usage: sheaf-fuzz TARGET FILE…  (TARGET: \(FuzzTargets.names.joined(separator: ", ")))\n".utf8))
                exit(2)
            }
            for file in args.dropFirst() {
                guard let data = FileManager.default.contents(atPath: file) else {
                    FileHandle.standardError.write(Data("cannot read \(file)\n".utf8))
                    exit(1)
                }
                let accepted = data.withUnsafeBytes { FuzzTargets.run(name, $0) }
                print("\(file): \(accepted ? "accepted" : "rejected")")
            }
        }
    }
#endif

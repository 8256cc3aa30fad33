// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Sheaf",
    products: [
        .library(name: "SheafRandom", targets: ["SheafRandom"]),
        .library(name: "SheafStore", targets: ["SheafStore"]),
        .library(name: "SheafCodebook", targets: ["SheafCodebook"]),
        .library(name: "SheafQuantizer", targets: ["SheafQuantizer"]),
        .library(name: "SheafLinearAlgebra", targets: ["SheafLinearAlgebra"]),
        .library(name: "SheafFormats", targets: ["SheafFormats"]),
        .library(name: "SheafNN", targets: ["SheafNN"]),
        .library(name: "SheafText", targets: ["SheafText"]),
        .library(name: "SheafModels", targets: ["SheafModels"]),
        /// Benchmark workloads and baselines, shared by `sheaf-measure` and the nested Benchmarks package.
        /// Not API: the leading underscore says so (as swift-collections' `_RopeModule`); it changes with the benchmarks.
        .library(name: "_SheafBench", targets: ["_SheafBench"]),
        /// libSheaf.so: the C API of Sources/CSheafAPI/include/sheaf.h (tools/build-clib builds it with
        /// the Swift runtime linked in, for C, C++, Go, Java and Python callers).
        .library(name: "Sheaf", type: .dynamic, targets: ["SheafC"]),
        .executable(name: "sheaf", targets: ["sheaf"]),
        .executable(name: "sheaf-measure", targets: ["SheafMeasure"]),
        .executable(name: "sheaf-fuzz", targets: ["sheaf-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // MARK: - C libraries (one small system-library target each)
        .systemLibrary(
            name: "CLMDB", pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(
            name: "CZstd", pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(
            name: "COpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),

        /// CPUID: the instruction-set extensions that decide which OpenBLAS kernels can run.
        .target(name: "CSheafCPU"),
        /// Encoding's approximate scores: int8 rows against packed int8 centroids (AVX-512 VNNI or portable).
        .target(name: "CSheafEncode"),

        // MARK: - Hot kernels in C (AVX2/FMA with runtime dispatch, portable fallback)
        /// Residual-codebook decode, half conversion and CRC-32C, for SheafCodebook and SheafStore.
        .target(name: "CSheafDecode"),
        /// SheafNN's element-wise and row-wise kernels and the allocator setting for training.
        .target(name: "CSheafNN"),

        // MARK: - Sheaf modules
        /// SplitMix64, the seeded generator behind training, sampling, synthetic data and tests.
        .target(name: "SheafRandom"),
        /// Codebook model, bit-packed code layout, the SIMD decoder and projected codebooks (tables C_l · W,
        /// made with OpenBLAS). Knows nothing of LMDB.
        .target(name: "SheafCodebook", dependencies: ["CSheafDecode", "SheafLinearAlgebra"]),
        /// Codebook training (balanced k-means), batched encoding and quality reports. Knows nothing of LMDB.
        .target(name: "SheafQuantizer", dependencies: ["SheafCodebook", "SheafLinearAlgebra", "SheafRandom", "CSheafEncode"]),
        /// Readers and writers of the file formats users bring (.npy so far).
        .target(name: "SheafFormats"),
        /// Thin owned wrapper over OpenBLAS.
        .target(name: "SheafLinearAlgebra", dependencies: ["COpenBLAS", "CSheafCPU"]),
        // Tensors, reverse-mode gradients and training on OpenBLAS; knows nothing of storage (it runs the
        // decode kernel of CSheafDecode for layers over residual codes, `ResidualCodes`).
        .target(name: "SheafNN", dependencies: ["SheafLinearAlgebra", "SheafFormats", "SheafRandom", "CSheafNN", "CSheafDecode"]),
        // Sheaf's item-text encoder: the WordPiece tokenizer and a pretrained BERT on SheafNN.
        .target(name: "SheafText", dependencies: ["SheafNN", "SheafFormats", "SheafRandom"]),
        /// The LMDB-backed store: typed tables, item codes, segmented histories, decode.
        .target(name: "SheafStore", dependencies: ["CLMDB", "CZstd", "CSheafDecode", "SheafCodebook"]),
        /// Models trained from the store: training sequences read out of it, the leave-one-out split,
        /// full-ranking metrics, the training loop and the recommenders. The only module that knows both
        /// SheafNN and SheafStore.
        .target(name: "SheafModels", dependencies: ["SheafNN", "CSheafNN", "SheafStore", "SheafCodebook", "SheafFormats", "SheafRandom", "SheafText", "SheafQuantizer"]),
        /// sheaf.h, the public C header, and the per-thread last error of the C API.
        .target(name: "CSheafAPI"),
        /// The C API (`@_cdecl` entry points of sheaf.h) over SheafStore: integer handles, error codes, no traps.
        .target(name: "SheafC", dependencies: ["CSheafAPI", "SheafStore", "SheafCodebook", "SheafQuantizer", "SheafModels"], exclude: ["exports.map"]),
        /// The `sheaf` command line: subcommands, loaders, progress. A library so tests can run commands in-process.
        .target(
            name: "SheafCLI",
            dependencies: [
                "SheafStore", "SheafCodebook", "SheafQuantizer", "SheafFormats", "SheafText", "SheafRandom",
                "SheafLinearAlgebra", "SheafModels", "SheafNN", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        /// The `sheaf` executable: `OpenBLASCore.selectBestCore()`, then `SheafCommand.main()`.
        .executableTarget(name: "sheaf", dependencies: ["SheafCLI", "SheafLinearAlgebra"]),
        /// Benchmark workloads: synthetic clustered data, decode and store workloads, float32 baselines
        /// kept in the same LMDB, latency sampling. Used by `sheaf-measure` and by Benchmarks/; not API.
        /// Every decoder of untrusted bytes behind one entry point, for `sheaf-fuzz` and FuzzTargetTests.
        .target(name: "SheafFuzzTargets", dependencies: ["SheafStore", "SheafFormats", "SheafText"]),
        /// libFuzzer driver (tools/fuzz builds it with -sanitize=fuzzer); an ordinary build replays files.
        .executableTarget(name: "sheaf-fuzz", dependencies: ["SheafFuzzTargets"]),
        .target(name: "_SheafBench", dependencies: ["SheafStore", "SheafCodebook", "SheafQuantizer", "SheafRandom"]),
        /// `sheaf-measure`, one command with a subcommand per measurement: the `bench` suites of
        /// tools/bench-report (JSON out), `quantize`, `history-fetch`, `nn-step`.
        .executableTarget(
            name: "SheafMeasure",
            dependencies: [
                "_SheafBench", "SheafCLI", "SheafStore", "SheafCodebook", "SheafQuantizer", "SheafFormats", "SheafNN",
                "SheafRandom", "SheafLinearAlgebra", "SheafModels",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // MARK: - Tests
        .testTarget(name: "SheafRandomTests", dependencies: ["SheafRandom"]),
        .testTarget(name: "SheafCodebookTests", dependencies: ["SheafCodebook", "SheafRandom", "CSheafDecode"]),
        .testTarget(name: "SheafQuantizerTests", dependencies: ["SheafQuantizer", "SheafCodebook", "SheafRandom", "CSheafEncode"]),
        .testTarget(name: "SheafFormatsTests", dependencies: ["SheafFormats"]),
        .testTarget(name: "SheafFuzzTargetTests", dependencies: ["SheafFuzzTargets", "SheafRandom"]),
        .testTarget(name: "SheafLinearAlgebraTests", dependencies: ["SheafLinearAlgebra"]),
        .testTarget(name: "SheafNNTests", dependencies: ["SheafNN", "SheafFormats", "SheafRandom", "CSheafNN", "CSheafDecode"]),
        .testTarget(name: "SheafTextTests", dependencies: ["SheafText", "SheafNN", "SheafFormats"]),
        .testTarget(
            name: "SheafStoreTests", dependencies: ["SheafStore", "SheafCodebook", "SheafRandom", "SheafFormats"],
            exclude: ["Fixtures"]),
        .testTarget(name: "SheafModelsTests", dependencies: ["SheafModels", "SheafNN", "SheafStore", "SheafCodebook", "SheafRandom", "SheafText"]),
        .testTarget(
            name: "SheafCLITests",
            dependencies: [
                "SheafCLI", "SheafStore", "SheafFormats", "SheafCodebook", "SheafText", "SheafRandom", "SheafLinearAlgebra",
                "SheafModels",
            ]),
        /// Tests that need what the package does not hold: Python with tools/requirements.txt (pip-installed into
        /// tools/.venv on first use), the built sheaf-measure, the demo's data. Each is skipped, saying what is
        /// missing, when it is not there. `tools/test` runs them after the unit tests; `tools/test --unit` does not.
        .testTarget(
            name: "SheafIntegrationTests", dependencies: ["SheafFormats", "SheafText", "_SheafBench", "SheafStore", "SheafCodebook", "SheafRandom", "SheafModels", "SheafCLI", "SheafQuantizer"],
            exclude: ["c"]),
        .testTarget(
            name: "SheafBenchTests", dependencies: [
                "_SheafBench", "SheafCLI", "SheafStore", "SheafFormats", "SheafCodebook", "SheafQuantizer", "SheafRandom",
            ]),
    ]
)

// swift-tools-version: 6.1
// Sheaf's benchmark suites, run with ordo-one's package-benchmark:
//
//   cd Benchmarks && swift package benchmark
//
// A package of its own so the library package does not depend on package-benchmark. Each suite is
// one executable target in the folder of the same name (the plugin only picks up targets whose folder
// sits directly in a folder called "Benchmarks", which this package's root is). See README.md.
import PackageDescription

let sheafProducts: [Target.Dependency] = [
    .product(name: "Benchmark", package: "benchmark"),
    .product(name: "_SheafBench", package: "Sheaf"),
    .product(name: "SheafStore", package: "Sheaf"),
    .product(name: "SheafCodebook", package: "Sheaf"),
    .product(name: "SheafQuantizer", package: "Sheaf"),
    .product(name: "SheafRandom", package: "Sheaf"),
]

let package = Package(
    name: "SheafBenchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "Sheaf", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        /// n × D reconstruction throughput over the decode grid, beside memcpy of the same bytes.
        .executableTarget(
            name: "Decode", dependencies: sheafProducts, path: "Decode",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),
        /// Item-record gets and history fetch + decode latency, beside float32 rows in the same LMDB.
        .executableTarget(
            name: "Store", dependencies: sheafProducts, path: "Store",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),
        /// Items encoded and behaviours appended per second, beside float32 puts.
        .executableTarget(
            name: "Ingest", dependencies: sheafProducts, path: "Ingest",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),
    ]
)

import Foundation
import SheafStore
import _SheafBench

// The rows and probe files of the store suites (synthetic and real).

func storeRows(
    section: String, dataset: String, latency: HistoryLatency, bucket: String, dimension: Int
) -> [ReportRow] {
    let p = ["users": "\(latency.users)", "requests": "\(latency.requests)", "mean_length": String(format: "%.0f", latency.meanLength), "dimension": "\(dimension)"]
    let k = "store/\(dataset)/history/\(bucket)"
    let what = "history of \(bucket == "all" ? String(format: "%.0f (mean)", latency.meanLength) : bucket) behaviours, D=\(dimension)"
    return [
        ReportRow(section: section, key: k + "/p50", label: "fetch + decode p50, \(what)", unit: "µs", sheaf: latency.sheaf.p50Microseconds,
                  baselineName: "float32 rows, one get per behaviour", baseline: latency.rawRows.p50Microseconds, better: "lower", params: p),
        ReportRow(section: section, key: k + "/p99", label: "fetch + decode p99, \(what)", unit: "µs", sheaf: latency.sheaf.p99Microseconds,
                  baselineName: "float32 rows, one get per behaviour", baseline: latency.rawRows.p99Microseconds, better: "lower", params: p),
        ReportRow(section: section, key: k + "/blob-p50", label: "fetch + decode p50, \(what)", unit: "µs", sheaf: latency.sheaf.p50Microseconds,
                  baselineName: "float32 history blob, one get", baseline: latency.rawBlob.p50Microseconds, better: "lower", params: p),
        ReportRow(section: section, key: k + "/c16-p50", label: "fetch + decode p50, float16 centroids, \(what)", unit: "µs",
                  sheaf: latency.sheafHalf.p50Microseconds, baselineName: "float32 rows, one get per behaviour",
                  baseline: latency.rawRows.p50Microseconds, better: "lower", params: p),
        ReportRow(section: section, key: k + "/c16-p99", label: "fetch + decode p99, float16 centroids, \(what)", unit: "µs",
                  sheaf: latency.sheafHalf.p99Microseconds, baselineName: "float32 rows, one get per behaviour",
                  baseline: latency.rawRows.p99Microseconds, better: "lower", params: p),
        ReportRow(section: section, key: k + "/fetch-only-p50", label: "fetch only (segments, no decode) p50, \(what)", unit: "µs",
                  sheaf: latency.sheafSegmentsOnly.p50Microseconds, baselineName: "float32 rows, one get per behaviour",
                  baseline: latency.rawRows.p50Microseconds, better: "lower", params: p),
        ReportRow(section: section, key: k + "/memcpy-p50", label: "fetch + decode p50, \(what)", unit: "µs", sheaf: latency.sheaf.p50Microseconds,
                  baselineName: "memcpy of the output bytes", baseline: latency.memcpy.p50Microseconds, better: "lower", params: p),
        ReportRow(section: section, key: k + "/memset-p50", label: "fetch + decode p50, \(what)", unit: "µs", sheaf: latency.sheaf.p50Microseconds,
                  baselineName: "memset of the output bytes (the floor for any decoder writing float32)", baseline: latency.memset.p50Microseconds,
                  better: "lower", params: p),
        ReportRow(section: "bandwidth", key: "bytes/\(dataset)/\(bucket)", label: "bytes fetched per history, \(what)", unit: "B",
                  sheaf: latency.sheafBytesPerHistory, baselineName: "float32 rows", baseline: latency.float32BytesPerHistory, better: "lower", params: p),
    ]
}

func itemGetRows(dataset: String, gets: StoreMeasurements.ItemGets, dimension: Int) -> [ReportRow] {
    let p = ["per_transaction": "\(gets.perTransaction)", "reads": "\(gets.reads)", "dimension": "\(dimension)"]
    let k = "store/\(dataset)/item-gets/\(gets.perTransaction)"
    return [
        ReportRow(section: "store", key: k + "/record", label: "random item-record gets, \(gets.perTransaction) per read txn, D=\(dimension)", unit: "gets/s",
                  sheaf: gets.sheafRecordGetsPerSecond, baselineName: "float32 row get + copy", baseline: gets.rawRowGetsPerSecond, better: "higher", params: p),
        ReportRow(section: "store", key: k + "/decoded", label: "random item gets + decode, \(gets.perTransaction) per read txn, D=\(dimension)", unit: "items/s",
                  sheaf: gets.sheafDecodedGetsPerSecond, baselineName: "float32 row get + copy", baseline: gets.rawRowGetsPerSecond, better: "higher", params: p),
    ]
}

/// The users and their item ids, for the Python lmdb reader (tools/lmdb_baseline.py).
struct Probe: Codable {
    struct Bucket: Codable {
        var name: String
        var sheafP50Microseconds: Double
        var sheafP99Microseconds: Double
        var users: [UInt64]
        var items: [[UInt64]]
    }
    var dataset: String
    var store: String
    var dimension: Int
    var rawItemsTable: String
    var rawHistoriesTable: String
    var buckets: [Bucket]
}

func probeBucket(_ store: Store, name: String, users: [UInt64], latency: HistoryLatency, limit: Int = 50) throws -> Probe.Bucket {
    let chosen = Array(users.prefix(limit))
    let items = try store.read { txn in try chosen.map { try txn.history(user: $0)?.itemIDs ?? [] } }
    return Probe.Bucket(name: name, sheafP50Microseconds: latency.sheaf.p50Microseconds, sheafP99Microseconds: latency.sheaf.p99Microseconds, users: chosen, items: items)
}

/// The rows of a history → model-input measurement at one width H (`StoreMeasurements.projectedLatency`).
func projectedRows(dataset: String, latency p: ProjectedLatency, bucket: String, dimension: Int) -> [ReportRow] {
    let params = [
        "users": "\(p.users)", "requests": "\(p.requests)", "mean_length": String(format: "%.0f", p.meanLength), "dimension": "\(dimension)",
        "width": "\(p.width)", "table_bytes": "\(p.tableBytes)", "worst_relative_difference": String(format: "%.1e", p.worstRelativeDifference),
    ]
    let k = "projected/\(dataset)/\(bucket)/h\(p.width)"
    let what = "history of \(bucket == "all" ? String(format: "%.0f (mean)", p.meanLength) : bucket) behaviours → x · W + b, D=\(dimension), H=\(p.width)"
    func row(_ suffix: String, _ label: String, _ sheaf: Double, _ name: String, _ base: Double) -> ReportRow {
        ReportRow(section: "projected", key: k + suffix, label: label + ", " + what, unit: "µs", sheaf: sheaf, baselineName: name, baseline: base,
                  better: "lower", params: params)
    }
    return [
        row("/rows-p50", "projected decode p50", p.projected.p50Microseconds, "(a) float32 rows, one get per behaviour, then sgemm", p.rowsThenGemm.p50Microseconds),
        row("/rows-p99", "projected decode p99", p.projected.p99Microseconds, "(a) float32 rows, one get per behaviour, then sgemm", p.rowsThenGemm.p99Microseconds),
        row("/decode-p50", "projected decode p50", p.projected.p50Microseconds, "(b) Sheaf decode to D, then sgemm", p.decodeThenGemm.p50Microseconds),
        row("/decode-p99", "projected decode p99", p.projected.p99Microseconds, "(b) Sheaf decode to D, then sgemm", p.decodeThenGemm.p99Microseconds),
        row("/blob-p50", "projected decode p50", p.projected.p50Microseconds, "(c) float32 history blob, one get, then sgemm", p.blobThenGemm.p50Microseconds),
        row("/blob-p99", "projected decode p99", p.projected.p99Microseconds, "(c) float32 history blob, one get, then sgemm", p.blobThenGemm.p99Microseconds),
    ]
}

import Foundation
import Testing
import _SheafBench

#if canImport(Glibc)
import Glibc
#endif

@Suite struct CosineTests {
    @Test func againstAHandComputedValue() {
        let x: [Float] = [1, 2, 3], y: [Float] = [4, 5, 6]
        // 32 / (√14 · √77) = 32 / √1078.
        let c = cosine(x, y, count: 3)
        #expect(abs(c - 0.974_631_846_197_076_2) < 1e-12)
        #expect(abs(cosine(x, x, count: 3) - 1) < 1e-15)
        #expect(abs(cosine(x, [-1, -2, -3], count: 3) + 1) < 1e-15)
        #expect(cosine(x, [0, 0, 0], count: 3) == 0, "a zero row has cosine 0")
        #expect(abs(cosine([1, 0], [0, 1], count: 2)) == 0)
    }

    @Test func rowSumIsTheSumOfRowCosines() {
        let x: [Float] = [1, 2, 3, 1, 0, 0], y: [Float] = [4, 5, 6, 0, 1, 0]
        #expect(abs(rowCosineSum(x, y, rows: 2, dimension: 3) - 0.974_631_846_197_076_2) < 1e-12)
    }
}

@Suite struct QuantileTests {
    @Test func nearestRank() {
        let s: [Double] = [1, 2, 3, 4]
        // Rank (4 − 1) × 0.5 = 1.5: the upper neighbour by default, the lower toward zero.
        #expect(quantile(ofSorted: s, 0.5) == 3)
        #expect(quantile(ofSorted: s, 0.5, rounding: .towardZero) == 2)
        #expect(quantile(ofSorted: s, 0) == 1)
        #expect(quantile(ofSorted: s, 1) == 4)
        #expect(quantile(ofSorted: s, 0.99) == 4)
        #expect(quantile(ofSorted: s, 0.99, rounding: .towardZero) == 3)
        #expect(quantile(ofSorted: [], 0.5) == 0)
        #expect(quantile(ofSorted: [7], 0.99) == 7)
        // The upper median is the middle element of an odd count and the upper middle of an even one.
        for n in 1...9 {
            let sorted = (0..<n).map(Double.init)
            #expect(quantile(ofSorted: sorted, 0.5) == sorted[n / 2])
        }
    }

    @Test func latencySamplesAreMicroseconds() {
        var s = LatencySamples()
        for ns in [5_000, 1_000, 3_000, 2_000, 4_000] as [UInt64] { s.add(nanoseconds: ns) }
        #expect(s.count == 5)
        #expect(s.microseconds == [5, 1, 3, 2, 4])
        #expect(s.p50 == 3)
        #expect(s.p99 == 5)
        var lower = LatencySamples(rounding: .towardZero)
        for ns in [1_000, 2_000] as [UInt64] { lower.add(nanoseconds: ns) }
        #expect(lower.p50 == 1)
        #expect(LatencySamples().p50 == 0)
    }

    @Test func bestSecondsRunsAtLeastTheMinimum() {
        var runs = 0
        let best = bestSeconds(minimumRuns: 4, minimumSeconds: 0) { runs += 1 }
        #expect(runs == 4)
        #expect(best >= 0 && best < 1)
    }
}

@Suite struct ProcessDirectoriesTests {
    @Test func staleDirectoriesAreRemovedAndLiveOnesKept() throws {
        let dirs = ProcessDirectories(prefix: "sheaf-bench-test-\(UUID().uuidString.prefix(8))-")
        let mine = dirs.path(owner: getpid(), suffix: "1")
        #expect(mine == ProcessDirectories.temporaryDirectory + dirs.prefix + "\(getpid())-1")
        #expect(dirs.path(owner: 12) == ProcessDirectories.temporaryDirectory + dirs.prefix + "12")
        // A pid above Linux's pid_max (4,194,304) belongs to no process.
        let dead = dirs.path(owner: 99_999_999), deadWithSuffix = dirs.path(owner: 99_999_999, suffix: "2")
        for d in [mine, dead, deadWithSuffix] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        defer { for d in [mine, dead, deadWithSuffix] { try? FileManager.default.removeItem(atPath: d) } }
        dirs.removeStale()
        #expect(FileManager.default.fileExists(atPath: mine))
        #expect(!FileManager.default.fileExists(atPath: dead))
        #expect(!FileManager.default.fileExists(atPath: deadWithSuffix))
        dirs.remove(owner: getpid())
        #expect(!FileManager.default.fileExists(atPath: mine))
    }
}

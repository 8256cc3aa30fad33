import SheafRandom
import Testing

@testable import SheafModels

@Suite struct InterestMatchingTests {
    /// The best total over every injective map of n rows to m columns, by enumeration.
    func bruteForce(_ scores: [Float], rows n: Int, columns m: Int) -> Double {
        var best = -Double.infinity
        var used = [Bool](repeating: false, count: m)
        func go(_ i: Int, _ total: Double) {
            if i == n {
                best = max(best, total)
                return
            }
            for j in 0..<m where !used[j] {
                used[j] = true
                go(i + 1, total + Double(scores[i * m + j]))
                used[j] = false
            }
        }
        go(0, 0)
        return best
    }

    func total(_ scores: [Float], _ assignment: [Int], columns m: Int) -> Double {
        assignment.enumerated().reduce(0) { $0 + Double(scores[$1.offset * m + $1.element]) }
    }

    func isInjective(_ assignment: [Int], columns m: Int) -> Bool {
        Set(assignment).count == assignment.count && assignment.allSatisfy { (0..<m).contains($0) }
    }

    @Test func hungarianMatchesBruteForce() {
        var rng = SplitMix64(seed: 77)
        var cases = 0
        for n in 1...6 {
            for m in n...min(n + 2, 7) {
                for trial in 0..<25 {
                    // Every third matrix draws from three values only, so that optimal assignments tie.
                    let scores: [Float] = (0..<(n * m)).map { _ in
                        trial % 3 == 0 ? Float(rng.next() % 3) / 2 : rng.nextFloat() * 2 - 1
                    }
                    let a = InterestMatching.hungarian(scores, rows: n, columns: m)
                    #expect(isInjective(a, columns: m), "\(n)×\(m) \(a)")
                    #expect(abs(total(scores, a, columns: m) - bruteForce(scores, rows: n, columns: m)) < 1e-5, "\(n)×\(m) trial \(trial)")
                    #expect(InterestMatching.hungarian(scores, rows: n, columns: m) == a)  // deterministic
                    let g = InterestMatching.greedy(scores, rows: n, columns: m)
                    #expect(isInjective(g, columns: m) && total(scores, g, columns: m) <= total(scores, a, columns: m) + 1e-5)
                    cases += 1
                }
            }
        }
        #expect(cases == 25 * (3 + 3 + 3 + 3 + 3 + 2))
        #expect(InterestMatching.hungarian([0.3], rows: 1, columns: 1) == [0])
        #expect(InterestMatching.hungarian([], rows: 0, columns: 3) == [])
    }

    @Test func greedyCanLoseWhatHungarianFinds() {
        // Greedy takes 0.9 first and is left with 0.1 (1.0 in all); the best is 0.8 + 0.85.
        let scores: [Float] = [0.9, 0.8, 0.85, 0.1]
        #expect(InterestMatching.greedy(scores, rows: 2, columns: 2) == [0, 1])
        #expect(InterestMatching.hungarian(scores, rows: 2, columns: 2) == [1, 0])
    }

    @Test func clustersOfTargets() {
        // Two directions, three noisy copies each, interleaved in time.
        var rng = SplitMix64(seed: 5)
        let a: [Float] = [1, 0, 0, 0], b: [Float] = [0, 0, 1, 1]
        var vectors: [Float] = []
        for i in 0..<6 { vectors += (i % 2 == 0 ? a : b).map { $0 + (rng.nextFloat() - 0.5) * 0.1 } }
        let two = InterestMatching.clusters(vectors, count: 6, dimension: 4, groups: 2)
        #expect(two.k == 2)
        #expect(two.assignment == [0, 1, 0, 1, 0, 1])  // seeded with the first target, then the farthest
        #expect(two.centroids[0] > 0.99 && abs(two.centroids[6] - 0.7071) < 0.05)
        // The same input gives the same clusters.
        let again = InterestMatching.clusters(vectors, count: 6, dimension: 4, groups: 2)
        #expect(again.centroids == two.centroids && again.assignment == two.assignment)
        // More groups than distinct directions: three targets, two directions (one repeated,
        // scaled: cosine ignores length), four groups asked → two clusters.
        let repeated = a + b + a.map { $0 * 3 }
        let capped = InterestMatching.clusters(repeated, count: 3, dimension: 4, groups: 4)
        #expect(capped.k == 2 && capped.assignment == [0, 1, 0] && capped.centroids.count == 8)
        // One group: everything in it, centroid the normalised mean.
        let one = InterestMatching.clusters(a + b, count: 2, dimension: 4, groups: 1)
        #expect(one.k == 1 && one.assignment == [0, 0])
        let expected: [Float] = [1, 0, 0.7071, 0.7071].map { $0 / Float(2).squareRoot() }  // (a + b/|b|) normalised
        for j in 0..<4 { #expect(abs(one.centroids[j] - expected[j]) < 1e-3, "\(one.centroids)") }
    }
}

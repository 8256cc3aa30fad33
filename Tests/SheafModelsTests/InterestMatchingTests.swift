import Foundation
import SheafNN
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

@Suite struct DMILTests {
    let a: [Float] = [1, 0], b: [Float] = [0, 1]

    @Test func planMatchesClustersToInterests() {
        // Row 0: interests r0 = B, r1 = A; targets A, B, A. Row 1: no targets. Row 2: r0 = A, r1 = B; target B.
        let interests: [Float] = b + a + a + b + a + b
        let plan = DMILPlan(interests: interests, targets: [a + b + a, [], b], interestsPerRow: 2, dimension: 2)
        #expect(plan.targetRow == [0, 0, 0, 2])
        #expect(plan.interest == [1, 0, 1, 2 * 2 + 1])
        // One interest: every target trains it.
        let one = DMILPlan(interests: a, targets: [a + b + a], interestsPerRow: 1, dimension: 2)
        #expect(one.interest == [0, 0, 0])
        // Greedy and Hungarian agree here (the best pairs are disjoint).
        #expect(DMILPlan(interests: interests, targets: [a + b + a, [], b], interestsPerRow: 2, dimension: 2, rule: .greedy) == plan)
    }

    @Test func lossAgainstItsDefinition() {
        // Interests (1 row, s = 3): r0 = B, r1 = A, r2 = (1, 1) never matched (two clusters only).
        let t = Tape()
        let interests = Tensor.parameter(shape: [3, 2], values: b + a + [1, 1])
        // Items: 0 padding, 1 = A, 2 = B, 3 = (1, 2).
        let keys = Tensor.parameter(shape: [4, 2], values: [0, 0] + a + b + [1, 2])
        let plan = DMILPlan(interests: interests.values, targets: [a + b + a], interestsPerRow: 3, dimension: 2)
        #expect(plan.interest == [1, 0, 1])
        let tau: Float = 0.5
        let loss = t.dmilLoss(interests: interests, plan: plan, keys: keys, targetItems: [1, 2, 1], negativeItems: [3, 1], temperature: tau)
        // By hand: targets 1 and 3 (item A, interest A): positive cos 1; negatives item 3 (cos 1/√5);
        // item 1 is their own item, left out. Target 2 (item B, interest B): positive cos 1; negatives
        // item 3 (cos 2/√5) and item 1 (cos 0).
        func term(_ positive: Double, _ negatives: [Double]) -> Double {
            let s = Double(tau)
            return -positive / s + log(exp(positive / s) + negatives.reduce(0) { $0 + exp($1 / s) })
        }
        let expected = (2 * term(1, [1 / 5.0.squareRoot()]) + term(1, [2 / 5.0.squareRoot(), 0])) / 3
        #expect(abs(Double(loss.scalar) - expected) < 1e-5, "\(loss.scalar) vs \(expected)")
        // Only matched interests receive gradient: r2 (unmatched) gets none, r0 and r1 do.
        t.backward(loss)
        let g = interests.grad!
        #expect(g[4] == 0 && g[5] == 0)
        #expect(g[0..<4].contains { $0 != 0 })
    }
}

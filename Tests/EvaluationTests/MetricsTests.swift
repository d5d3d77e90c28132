import Testing
@testable import Evaluation

@Suite struct MetricsTests {
    @Test func handComputedCaseWithTies() {
        // Scores with a tie between a positive and a negative: AUC counts it ½.
        let labels = [1, 1, 0, 0, 1, 0]
        let scores = [0.9, 0.4, 0.4, 0.2, 0.7, 0.6]
        let m = Metrics(labels: labels, scores: scores)
        // Pairs (pos > neg): 0.9 beats 3, 0.7 beats 3, 0.4 beats 0.2 and ties 0.4 → 7.5 of 9.
        #expect(abs(m.auc! - 7.5 / 9) < 1e-12)
        // At 0.5: TP 2 (0.9, 0.7), FN 1, FP 1 (0.6), TN 2.
        #expect(m.accuracy == 4.0 / 6 && m.sensitivity == 2.0 / 3 && m.specificity == 2.0 / 3 && m.f1 == 4.0 / 6)
    }

    @Test func singleClassHasNoAUC() {
        let m = Metrics(labels: [1, 1], scores: [0.2, 0.8])
        #expect(m.auc == nil && m.specificity == nil && m.sensitivity == 0.5)
        let empty = Metrics(labels: [], scores: [])
        #expect(empty.auc == nil && empty.accuracy == nil && empty.f1 == nil)
    }
}

import NN
import Testing
@testable import Model

@Suite struct LossSumsTests {
    let a = LossSums(classificationSum: 1.5, cases: 3, attentionNumerator: 2, attentionDenominator: 8, covidCases: 2)
    let b = LossSums(classificationSum: 0.5, cases: 1, attentionNumerator: 1, attentionDenominator: 2, covidCases: 1)

    @Test func sumsAddTermByTermAndRoundTripThroughValues() throws {
        let s = a + b
        #expect(s == LossSums(classificationSum: 2, cases: 4, attentionNumerator: 3, attentionDenominator: 10, covidCases: 3))
        #expect(LossSums(values: s.values) == s)
        var t = LossSums()
        t += a
        t += b
        #expect(t == s)
        // The cross-rank sum sees the five values and gets them back as named terms.
        #expect(try a.summed { v in v.map { $0 * 2 } } == a + a)
    }

    @Test func lossesOfTheGlobalSums() {
        let l = (a + b).losses(lambda: 0.5, attention: true)
        // L_c = 2 / 4, L_ex = 3 / 10, L = L_c + 0.5 · L_ex.
        #expect(l == StepLosses(classification: 0.5, attention: 0.3, total: 0.5 + 0.5 * 0.3, globalBatch: 4, covidCases: 3))
        #expect(l.attention == AttentionLossSums(numerator: 3, denominator: 10, covidCount: 3).loss)
    }

    @Test func noAttentionTermWithoutCovidCasesOrWithTheLossOff() {
        var capOnly = LossSums(classificationSum: 1, cases: 2, attentionNumerator: 0, attentionDenominator: 0, covidCases: 0)
        #expect(capOnly.losses(lambda: 0.5, attention: true).attention == 0)
        capOnly.attentionNumerator = 5   // ignored without COVID-19 cases
        #expect(capOnly.losses(lambda: 0.5, attention: true).total == 0.5)
        #expect(a.losses(lambda: 0.5, attention: false) == StepLosses(classification: 0.5, attention: 0, total: 0.5, globalBatch: 3, covidCases: 2))
    }
}

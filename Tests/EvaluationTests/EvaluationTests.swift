import CTData
import Foundation
import Testing
@testable import Evaluation

/// The predictions CSV, metrics per band, mean ± sd over folds and the paired t-test.
@Suite struct EvaluationTests {
    static func p(_ id: String, _ label: Label, _ ratio: Double?, _ probability: Double) -> Prediction {
        Prediction(caseID: id, patientID: "p-" + id, label: label, infectionRatio: ratio, probability: probability)
    }

    /// Eight cases over the three bands plus one without a ratio (the CLI test uses the same).
    static let cases = [
        p("c1", .covid, 0.001, 0.9), p("c2", .cap, 0.002, 0.4), p("c3", .cap, 0.0, 0.6),   // < 0.005
        p("c4", .covid, 0.01, 0.7), p("c5", .cap, 0.02, 0.3),                              // 0.005–0.030
        p("c6", .covid, 0.05, 0.8), p("c7", .covid, 0.1, 0.4),                             // > 0.030, COVID only
        p("c,8", .covid, nil, 0.55),                                                        // overall only
    ]

    // MARK: - Metrics

    @Test func overallAndPerBandByHand() {
        let e = Evaluation(Self.cases)
        // Overall: 5 COVID (0.9 0.7 0.8 0.4 0.55) vs 3 CAP (0.4 0.6 0.3). Pairs won:
        // 0.9 → 3, 0.7 → 3, 0.8 → 3, 0.4 → 1 + ½ (tie with 0.4), 0.55 → 2: 12.5 of 15.
        #expect(abs(e.overall.auc! - 12.5 / 15) < 1e-12)
        // At 0.5: TP 4, FN 1 (0.4), TN 2, FP 1 (0.6).
        #expect(e.overall.accuracy == 6.0 / 8 && e.overall.sensitivity == 0.8)
        #expect(e.overall.specificity == 2.0 / 3 && e.overall.f1 == 8.0 / 10)
        #expect(e.withoutRatio == 1 && e.overall.cases == 8)
        #expect(e.bands.map(\.band) == [.low, .middle, .high])
        #expect(e.bands.map(\.metrics.cases) == [3, 2, 2])   // c,8 is in no band

        let low = e.bands[0].metrics   // 0.9 vs 0.4, 0.6: AUC 1; TP 1, TN 1, FP 1
        #expect(low.auc == 1 && low.accuracy == 2.0 / 3 && low.sensitivity == 1 && low.specificity == 0.5 && low.f1 == 2.0 / 3)
        let middle = e.bands[1].metrics
        #expect(middle.auc == 1 && middle.accuracy == 1 && middle.f1 == 1)
        let high = e.bands[2].metrics   // one class: AUC and specificity undefined
        #expect(high.auc == nil && high.specificity == nil && high.sensitivity == 0.5 && high.accuracy == 0.5 && high.f1 == 2.0 / 3)
    }

    @Test func bandBoundariesFollowTheTables() {
        // r < 0.005 | 0.005 ≤ r ≤ 0.030 | r > 0.030, compared in float32 as the shards store r.
        #expect([0.0, 0.004999, 0.005, 0.03, 0.030001, 1].map(Evaluation.band) == [.low, .low, .middle, .middle, .high, .high])
    }

    @Test func emptyBandsAndEmptyInputAreNotANumber() {
        let e = Evaluation([Self.p("a", .covid, 0.5, 0.7), Self.p("b", .cap, 0.4, 0.2)])
        #expect(e.bands[0].metrics.cases == 0 && e.bands[1].metrics.cases == 0)
        for m in [e.bands[0].metrics, e.bands[1].metrics] {
            #expect(m.auc == nil && m.accuracy == nil && m.sensitivity == nil && m.specificity == nil && m.f1 == nil)
        }
        #expect(e.bands[2].metrics.auc == 1)
        let none = Evaluation([])
        #expect(none.overall.cases == 0 && none.overall.auc == nil && none.overall.accuracy == nil)
        let overallRow = none.table().split(separator: "\n")[1].split(separator: " ").map(String.init)
        #expect(overallRow == ["overall", "0", "0", "0", "n/a", "n/a", "n/a", "n/a", "n/a"])
    }

    @Test func allTiedScoresGiveAUCOneHalf() {
        let e = Evaluation((0..<6).map { Self.p("c\($0)", $0 % 2 == 0 ? .covid : .cap, 0.01, 0.5) })
        #expect(e.overall.auc == 0.5 && e.overall.sensitivity == 1 && e.overall.specificity == 0)
    }

    @Test func jsonHasNullWhereUndefined() {
        let text = Evaluation(Self.cases).json(predictions: "p.csv").text
        let object = try! JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
        let bands = object["bands"] as! [[String: Any]]
        #expect(bands.count == 3)
        #expect(bands[2]["auc"] is NSNull && bands[2]["specificity"] is NSNull)
        #expect(bands[2]["lower"] as? Double == 0.03 && bands[2]["upper"] is NSNull)
        #expect((object["overall"] as! [String: Any])["cases"] as? Int == 8)
        #expect(object["without_ratio"] as? Int == 1)
    }

    // MARK: - Across folds

    @Test func meanAndSampleStandardDeviation() {
        let m = MeanSD([1, 2, 3, 4])!
        #expect(m.mean == 2.5 && abs(m.sd! - (5.0 / 3).squareRoot()) < 1e-12)
        #expect(MeanSD([0.9])!.sd == nil && MeanSD([]) == nil)
        #expect(MeanSD([0.9475, 0.9441])!.description == "0.946 ± 0.002")
        // A fold with one class has no AUC: the summary uses the other folds.
        let folds = [Metrics(labels: [1, 0], scores: [0.9, 0.1]), Metrics(labels: [1, 1], scores: [0.9, 0.8])]
        let s = FoldSummary(folds)
        #expect(s.auc?.count == 1 && s.accuracy?.count == 2 && s.specificity?.count == 1)
    }

    // MARK: - Student t

    @Test func incompleteBetaKnownValues() {
        func close(_ a: Double, _ b: Double, _ tol: Double = 1e-12) -> Bool { abs(a - b) <= tol }
        for x in [0.0, 0.1, 0.5, 0.93, 1] {
            #expect(close(IncompleteBeta.regularized(a: 1, b: 1, x: x), x))
            #expect(close(IncompleteBeta.regularized(a: 3, b: 1, x: x), x * x * x))
            #expect(close(IncompleteBeta.regularized(a: 1, b: 4, x: x), 1 - pow(1 - x, 4)))
        }
        #expect(close(IncompleteBeta.regularized(a: 7.5, b: 7.5, x: 0.5), 0.5))
        // scipy.special.betainc
        #expect(close(IncompleteBeta.regularized(a: 2, b: 3, x: 0.3), 0.3483))
        #expect(close(IncompleteBeta.regularized(a: 0.5, b: 2.5, x: 0.2), 0.6856273623529828))
        #expect(close(IncompleteBeta.regularized(a: 50, b: 60, x: 0.45), 0.4642352914306031, 1e-10))
        #expect(close(IncompleteBeta.regularized(a: 0.5, b: 500, x: 0.001), 0.6826895526902824, 1e-10))
    }

    @Test func studentTTwoSidedPValues() {
        func p(_ t: Double, _ df: Double) -> Double { StudentT.twoSidedP(t: t, degreesOfFreedom: df) }
        #expect(abs(p(2.0, 4) - 0.11611652351681556) < 1e-12)   // the brief's 0.1161
        #expect(abs(p(-2.0, 4) - 0.11611652351681556) < 1e-12)
        #expect(abs(p(1, 1) - 0.5) < 1e-12)                      // Cauchy: 1 − 2 atan(1)/π
        #expect(abs(p(2.776445105, 4) - 0.05) < 1e-8)             // tables' critical value
        #expect(abs(p(1.962339, 1000) - 0.0500000094182668) < 1e-10)
        #expect(abs(p(0.1, 3) - 0.9266523488008059) < 1e-12)     // small t: the complement branch
        #expect(abs(p(40, 2) - 0.0006244146721847406) < 1e-14)
        #expect(abs(p(8, 30) / 6.265822475700759e-09 - 1) < 1e-9)
        #expect(p(0, 5) == 1 && p(.infinity, 5) == 0)
        #expect(abs(StudentT.cdf(2, degreesOfFreedom: 4) - (1 - 0.11611652351681556 / 2)) < 1e-12)
    }

    @Test func pairedTTestAcrossFolds() {
        // scipy.stats.ttest_rel(a, b): t = 4.8107023544236345, p = 0.008580918721924811.
        let a = [0.95, 0.96, 0.94, 0.97, 0.95], b = [0.93, 0.95, 0.92, 0.94, 0.94]
        let test = PairedTTest(a, b)!
        #expect(test.n == 5 && test.degreesOfFreedom == 4)
        #expect(abs(test.meanDifference - 0.018) < 1e-12)
        #expect(abs(test.t - 4.8107023544236345) < 1e-9)
        #expect(abs(test.p - 0.008580918721924811) < 1e-10)
        #expect(abs(PairedTTest(b, a)!.t + test.t) < 1e-12)
        // Degenerate folds: no division by zero.
        #expect(PairedTTest([0.9], [0.8]) == nil)
        let same = PairedTTest([0.9, 0.8], [0.9, 0.8])!
        #expect(same.t == 0 && same.p == 1)
        let shifted = PairedTTest([0.9, 0.8, 0.7], [0.8, 0.7, 0.6].map { $0 })!
        #expect(shifted.p < 1e-6)
    }

    // MARK: - CSV

    @Test func csvRoundTripWithQuotingAndAnyColumnOrder() throws {
        let text = PredictionsCSV.format(Self.cases)
        #expect(text.hasPrefix("case_id,patient_id,label,infection_ratio,probability\nc1,p-c1,1,0.001,0.9\n"))
        #expect(text.contains("\n\"c,8\",\"p-c,8\",1,,0.55\n"))
        #expect(try PredictionsCSV.parse(text, file: "x.csv") == Self.cases)

        // Reordered columns, an extra column, CRLF, a BOM, a quoted field with a quote and a
        // line break, a blank line.
        let other = "\u{FEFF}probability,extra,label,case_id,infection_ratio,patient_id\r\n"
            + "0.25,\"say \"\"hi\"\"\",cap,\"two\nlines\",0.0123,p9\r\n\r\n"
            + "1,x,1,c10,,p10"
        let rows = try PredictionsCSV.parse(other, file: "o.csv")
        #expect(rows == [Self.p("two\nlines", .cap, 0.0123, 0.25).with(patient: "p9"),
                         Self.p("c10", .covid, nil, 1).with(patient: "p10")])
    }

    @Test func csvErrorsNameTheFileAndTheLine() {
        let header = "case_id,patient_id,label,infection_ratio,probability\n"
        func message(_ text: String) -> String {
            do { _ = try PredictionsCSV.parse(text, file: "p.csv"); return "no error" } catch { return "\(error)" }
        }
        #expect(message("case_id,patient_id,label,probability\na,b,1,0.5\n")
                == "p.csv: line 1: missing column `infection_ratio`; the header needs at least case_id,patient_id,label,infection_ratio,probability")
        #expect(message(header + "a,pa,1,0.01,0.5\nb,pb,1,0.01,1.5\n")
                == "p.csv: line 3: case b: probability `1.5` is not a number in [0, 1]")
        #expect(message(header + "a,pa,1,0.01,nan\n") == "p.csv: line 2: case a: probability `nan` is not a number in [0, 1]")
        #expect(message(header + "a,pa,1,0.01,\n") == "p.csv: line 2: case a: probability `` is not a number in [0, 1]")
        #expect(message(header + "a,pa,2,0.01,0.5\n") == "p.csv: line 2: case a: unknown label `2`; use 1 (COVID-19) or 0 (CAP)")
        #expect(message(header + "a,pa,1,-0.1,0.5\n")
                == "p.csv: line 2: case a: infection_ratio `-0.1` is not a number in [0, 1]; leave it empty when unknown")
        #expect(message(header + "a,pa,1,0.01,0.5\n\"multi\nline\",pb,0,,0.5\na,pc,0,,0.5\n")
                == "p.csv: line 5: case a: appears again (first on line 2); case ids must be unique")
        #expect(message(header + "a,pa,1,0.5\n") == "p.csv: line 2: 4 fields, the header has 5")
        #expect(message(header + "\"a,pa,1,0.01,0.5\n") == "p.csv: line 2: a quoted field is never closed")
        #expect(message(header + "a\"b,pa,1,0.01,0.5\n")
                == "p.csv: line 2: a quote inside an unquoted field; quote the whole field and double the quote (RFC 4180)")
        #expect(message("") == "p.csv: is empty; expected the header case_id,patient_id,label,infection_ratio,probability")
        #expect(throws: DataError.self) { try PredictionsCSV.read("/nonexistent/p.csv") }
    }

    @Test func csvWriteAndReadBack() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dsan-eval-\(UUID().uuidString).csv").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let rows = [Self.p("x", .covid, 0.017, 0.123456789012345), Self.p("y", .cap, nil, 0)]
        try PredictionsCSV.write(rows, to: path)
        #expect(try PredictionsCSV.read(path) == rows)
    }
}

extension Prediction {
    func with(patient: String) -> Prediction {
        var p = self
        p.patientID = patient
        return p
    }
}

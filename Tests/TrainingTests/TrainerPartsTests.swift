import CTData
import Foundation
import Model
import Testing
@testable import Training

@Suite struct SamplingStrategyTests {
    @Test func configurationSpellings() throws {
        #expect(try SamplingStrategy(parsing: "uniform", source: "s") == .uniform)
        #expect(try SamplingStrategy(parsing: "size-balanced", source: "s") == .sizeBalanced)
        #expect(SamplingStrategy.allCases.map(\.description) == ["uniform", "size-balanced"])
    }

    @Test func unknownValueIsAnErrorNamingTheSourceAndKey() {
        #expect(throws: ConfigError.self) { try SamplingStrategy(parsing: "random", source: "command line") }
        do {
            _ = try SamplingStrategy(parsing: "Uniform", source: "command line")
            Issue.record("no error for `Uniform`")
        } catch {
            #expect("\(error)" == "command line: key `sampling`: must be `uniform` or `size-balanced`, got `Uniform`")
        }
    }

    @Test func yamlKeepsTheSpelling() throws {
        var c = TrainConfig()
        c.sampling = .sizeBalanced
        #expect(c.yaml.contains("sampling: size-balanced\n"))
        do {
            _ = try TrainConfig.parse("sampling: 3\n", source: "c.yaml")
            Issue.record("no error for `sampling: 3`")
        } catch {
            #expect("\(error)" == "c.yaml: key `sampling`: expected `uniform` or `size-balanced`, got `3`")
        }
    }
}

@Suite struct RunDirectoryTests {
    func scratch(_ tag: String) throws -> RunDirectory {
        let path = NSTemporaryDirectory() + "dsan-rundir-\(tag)-\(getpid())"
        try? FileManager.default.removeItem(atPath: path)
        let run = RunDirectory(path)
        try run.create()
        return run
    }

    /// The validation predictions are the predictions CSV, with the ratio spelled as its Float
    /// reads and a quoted field where an ID holds a comma.
    @Test func validationPredictionsAreThePredictionsCSV() throws {
        let run = try scratch("val")
        defer { try? FileManager.default.removeItem(atPath: run.path) }
        let ratio: Float = 0.123
        let predictions = [
            Prediction(caseID: "c1", patientID: "p,1", label: .covid, infectionRatio: Double("\(ratio)"), probability: 0.75),
            Prediction(caseID: "c2", patientID: "p2", label: .cap, infectionRatio: nil, probability: 0.25),
        ]
        try run.writeValidationPredictions(predictions, best: false)
        let expected = "case_id,patient_id,label,infection_ratio,probability\nc1,\"p,1\",1,0.123,0.75\nc2,p2,0,,0.25\n"
        #expect(try String(contentsOfFile: run.file("val_predictions_last.csv"), encoding: .utf8) == expected)
        #expect(!FileManager.default.fileExists(atPath: run.file("val_predictions.csv")))
        try run.writeValidationPredictions(predictions, best: true)
        #expect(try String(contentsOfFile: run.file("val_predictions.csv"), encoding: .utf8) == expected)
        #expect(try PredictionsCSV.read(run.file("val_predictions.csv")) == predictions)
    }

    @Test func recordsAppendOneSortedJSONLineEachAndAFreshRunDropsOldOnes() throws {
        let run = try scratch("jsonl")
        defer { try? FileManager.default.removeItem(atPath: run.path) }
        let record = StepRecord(epoch: 0, step: 1, globalStep: 1, loss: 0.5, classification: 0.5, attention: 0,
                                lr: 1e-3, cases: 4, covid: 2, shares: [[0, 1], [2, 3]])
        try run.append(record)
        try run.append(record)
        let lines = try String(contentsOfFile: run.file("steps.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0].hasPrefix("{\"allreduceSeconds\":0,\"attention\":0,"), "keys sorted: \(lines[0])")
        #expect(try JSONDecoder().decode(StepRecord.self, from: Foundation.Data(lines[1].utf8)) == record)
        try run.writeStart(config: TrainConfig(), resuming: true)
        #expect(FileManager.default.fileExists(atPath: run.file("steps.jsonl")))
        #expect(try String(contentsOfFile: run.file("config.yaml"), encoding: .utf8) == TrainConfig().yaml)
        try run.writeStart(config: TrainConfig(), resuming: false)
        #expect(!FileManager.default.fileExists(atPath: run.file("steps.jsonl")))
    }
}

@Suite struct DurationAndProgressTests {
    /// One formatter for every duration dsan prints: the trainer's log with whole seconds, progress
    /// lines with tenths.
    @Test func durations() {
        #expect(DurationText.short(.infinity) == "?")
        #expect(DurationText.short(.nan, fractionDigits: 0) == "?")
        #expect(DurationText.short(42.4, fractionDigits: 0) == "42s")
        #expect(DurationText.short(42.44) == "42.4s")
        #expect(DurationText.short(187) == "3m07s")
        #expect(DurationText.short(187, fractionDigits: 0) == "3m07s")
        #expect(DurationText.short(7500) == "2h05m")
        #expect(Evaluation.format(0.87654) == "0.8765")
        #expect(Evaluation.format(nil) == "n/a")
    }

    /// A clock the test moves by hand, and the lines written.
    final class Recorder {
        var time = Date(timeIntervalSince1970: 1_800_000_000)
        var lines: [String] = []
    }

    @Test func batchLogLinesAreThrottledTimestampedAndEndWithTheTotal() {
        let r = Recorder()
        let progress = ProgressLine("prepare", total: 8, isTerminal: false, now: { r.time }, write: { r.lines.append($0) })
        r.time += 4
        progress.update(2)                 // the first line comes at once
        r.time += 2
        progress.update(3)                 // within 5 s of the last: quiet
        r.time += 4
        progress.update(5)
        r.time += 6
        progress.update(8)                 // the last always prints
        #expect(r.lines.count == 3)
        #expect(r.lines[0] == RunLog.timestamp(Date(timeIntervalSince1970: 1_800_000_004)) + " prepare: 2/8 cases (0.5 cases/s, ETA 12.0s)\n")
        #expect(r.lines[1].hasSuffix(" prepare: 5/8 cases (0.5 cases/s, ETA 6.0s)\n"))
        #expect(r.lines[2].hasSuffix(" prepare: 8/8 cases (0.5 cases/s, took 16.0s)\n"))
        #expect(r.lines[2].hasPrefix("2027-01-15T08:00:16Z "))
    }

    @Test func terminalLineIsRewrittenInPlace() {
        let r = Recorder()
        let progress = ProgressLine("inspect", total: 2, isTerminal: true, now: { r.time }, write: { r.lines.append($0) })
        r.time += 1
        progress.update(1, unit: "shards")
        r.time += 0.1
        progress.update(1, unit: "shards")     // within 0.2 s: quiet
        r.time += 1
        progress.update(2, unit: "shards")
        #expect(r.lines == ["\r\u{1B}[Kinspect: 1/2 shards (1.0 shards/s, ETA 1.0s)",
                            "\r\u{1B}[Kinspect: 2/2 shards (1.0 shards/s, took 2.1s)\n"])
    }
}

import Foundation
import Testing
@testable import CTData

/// A cohort description with a known number of cases per sampling group.
func syntheticInfos(covidSmall: Int, covidLarge: Int, capSmall: Int, capLarge: Int) -> [CaseInfo] {
    var infos: [CaseInfo] = []
    func add(_ k: Int, _ label: Label, _ r: Float) {
        for _ in 0..<k { infos.append(CaseInfo(caseID: "c\(infos.count)", patientID: "p\(infos.count)", label: label, infectionRatio: r)) }
    }
    add(covidSmall, .covid, 0.01); add(covidLarge, .covid, 0.1); add(capSmall, .cap, 0.0005); add(capLarge, .cap, 0.01)
    return infos
}

@Suite struct SamplerTests {
    @Test func uniformCoversEveryCaseOncePerEpochAndIsPure() throws {
        let indices = Array(stride(from: 3, to: 3 + 2 * 47, by: 2))  // 47 cohort indices
        let s = try UniformSampler(training: indices, batch: 10, seed: 11)
        #expect(s.stepsPerEpoch == 5)
        for epoch in 0..<3 {
            let all = (0..<s.stepsPerEpoch).flatMap { s.globalBatch(epoch: epoch, step: $0) }
            #expect(all.sorted() == indices)
            #expect((0..<s.stepsPerEpoch).map { s.globalBatch(epoch: epoch, step: $0).count } == [10, 10, 10, 10, 7])
        }
        #expect(try s.globalBatch(epoch: 1, step: 2) == UniformSampler(training: indices, batch: 10, seed: 11).globalBatch(epoch: 1, step: 2))
        #expect(s.permutation(epoch: 0) != s.permutation(epoch: 1))
        #expect(try s.permutation(epoch: 0) != UniformSampler(training: indices, batch: 10, seed: 12).permutation(epoch: 0))
        let ordered = try UniformSampler(training: indices, batch: 10, seed: 11, shuffle: false)
        #expect(ordered.globalBatch(epoch: 4, step: 0) == Array(indices.prefix(10)))
    }

    @Test func sizeBalancedWeightsFollowTheFormula() throws {
        // The paper's imbalance: minority groups get ≈ N_majority / N_minority.
        let infos = syntheticInfos(covidSmall: 40, covidLarge: 60, capSmall: 75, capLarge: 50)
        let s = try SizeBalancedSampler(training: Array(infos.indices), cases: infos, batch: 20, seed: 1)
        #expect(s.weights == [1.5, 1, 1, 1.5])
        #expect(abs(s.probabilities.reduce(0, +) - 1) < 1e-12)
        #expect(abs(s.probabilities[0] - 1.5 / 5) < 1e-12)
        #expect(s.stepsPerEpoch == 12)
        #expect((0..<12).map { s.globalBatch(epoch: 0, step: $0).count }.reduce(0, +) == infos.count)
    }

    @Test func sizeBalancedGroupFrequenciesMatchProbabilities() throws {
        let infos = syntheticInfos(covidSmall: 10, covidLarge: 40, capSmall: 70, capLarge: 7)
        let s = try SizeBalancedSampler(training: Array(infos.indices), cases: infos, batch: 20, seed: 5)
        var counts = [Double](repeating: 0, count: 4)
        var total = 0.0
        for epoch in 0..<40 {
            for step in 0..<s.stepsPerEpoch {
                for i in s.globalBatch(epoch: epoch, step: step) {
                    counts[SamplingGroup(label: infos[i].label, ratio: infos[i].infectionRatio).rawValue] += 1
                    total += 1
                }
            }
        }
        for g in 0..<4 {
            let p = s.probabilities[g], f = counts[g] / total
            // 5 binomial standard deviations.
            let tol = 5 * (p * (1 - p) / total).squareRoot()
            #expect(abs(f - p) <= tol, "group \(g): frequency \(f), probability \(p), tolerance \(tol)")
        }
    }

    @Test func emptyGroupsAreNeverDrawn() throws {
        let infos = syntheticInfos(covidSmall: 0, covidLarge: 5, capSmall: 5, capLarge: 0)
        let s = try SizeBalancedSampler(training: Array(infos.indices), cases: infos, batch: 4, seed: 2)
        #expect(s.weights == [0, 1, 1, 0])
        #expect(s.warnings.count == 2)
        #expect(s.warnings[0] == "size-balanced sampling: group COVID small (r < 0.030) has no training case, so its probability is 0 and batches hold none of it; the groups are drawn with probabilities [0.000, 0.500, 0.500, 0.000] for [COVID small, COVID large, CAP small, CAP large] (see Docs/input-rules.md)")
        let drawn = (0..<50).flatMap { e in (0..<s.stepsPerEpoch).flatMap { s.globalBatch(epoch: e, step: $0) } }
        #expect(Set(drawn).isSubset(of: Set(infos.indices)))
    }

    /// An empty training split is an error a user reads, not a crash (issue 16: SIGILL).
    @Test func emptyTrainingSplitIsRefused() {
        let uniform = #expect(throws: SamplingError.self) { _ = try UniformSampler(training: [], batch: 4, seed: 1) }
        #expect(uniform?.description == "the training split has no case: nothing to train on; give --data shards with cases, or fewer --folds so every fold leaves training cases (see Docs/input-rules.md)")
        #expect(throws: SamplingError.self) { _ = try SizeBalancedSampler(training: [], cases: [], batch: 4, seed: 1) }
        #expect(throws: SamplingError.self) { _ = try UniformSampler(training: [1], batch: 0, seed: 1) }
    }

    @Test(arguments: [1, 2, 3, 7])
    func rankSharesPartitionTheGlobalBatch(ranks: Int) {
        for count in [0, 1, 2, 5, 6, 20, 23] {
            var covered: [Int] = []
            var sizes: [Int] = []
            for r in 0..<ranks {
                let share = rankShare(count: count, rank: r, ranks: ranks)
                covered += Array(share)
                sizes.append(share.count)
            }
            #expect(covered == Array(0..<count), "count \(count), ranks \(ranks)")
            #expect((sizes.max() ?? 0) - (sizes.min() ?? 0) <= 1)
        }
    }
}

@Suite struct FoldTests {
    func cohort() -> [CaseInfo] {
        SyntheticCohort.plan(cases: 157, seed: 9).map {
            CaseInfo(caseID: $0.caseID, patientID: $0.patientID, label: $0.label, infectionRatio: Float($0.targetRatio))
        }
    }

    @Test func noPatientInTwoFoldsAndStratifiedWithinOneCase() throws {
        let cases = cohort()
        for k in [2, 5] {
            let folds = try Folds(cases: cases, folds: k, seed: 3)
            var foldOfPatient: [String: Int] = [:]
            for (i, c) in cases.enumerated() {
                if let f = foldOfPatient[c.patientID] { #expect(f == folds.fold[i], "patient \(c.patientID) in two folds") }
                foldOfPatient[c.patientID] = folds.fold[i]
            }
            for label in Label.allCases {
                let perFold = (0..<k).map { f in cases.indices.filter { folds.fold[$0] == f && cases[$0].label == label }.count }
                #expect(perFold.max()! - perFold.min()! <= 1, "\(label) per fold: \(perFold)")
            }
            for f in 0..<k {
                let (train, val) = folds.split(f)
                #expect(Set(train).isDisjoint(with: val) && train.count + val.count == cases.count)
            }
        }
    }

    @Test func deterministicFromSeed() throws {
        let cases = cohort()
        #expect(try Folds(cases: cases, folds: 5, seed: 3).fold == Folds(cases: cases, folds: 5, seed: 3).fold)
        #expect(try Folds(cases: cases, folds: 5, seed: 3).fold != Folds(cases: cases, folds: 5, seed: 4).fold)
    }

    @Test func patientWithBothLabelsIsAnError() {
        var cases = cohort()
        let p = cases[0].patientID
        cases.append(CaseInfo(caseID: "extra", patientID: p, label: cases[0].label == .covid ? .cap : .covid, infectionRatio: 0))
        #expect(throws: DataError.self) { _ = try Folds(cases: cases, folds: 5, seed: 1) }
    }
}

@Suite struct SyntheticTests {
    @Test func planFollowsTableThreeProportions() {
        let plan = SyntheticCohort.plan(cases: 2186, seed: 1)
        let covid = plan.filter { $0.label == .covid }
        #expect(covid.count == 1094)
        let bands = [0, 1, 2].map { b in covid.filter { RatioBand(ratio: Float($0.targetRatio)).rawValue == b }.count }
        #expect(bands == [151, 318, 625])
        let patients = Dictionary(grouping: plan, by: \.patientID)
        #expect(patients.values.allSatisfy { (1...3).contains($0.count) && Set($0.map(\.label)).count == 1 })
    }

    @Test func generationIsDeterministicAndMasksAreConsistent() throws {
        let plan = SyntheticCohort.plan(cases: 6, seed: 4)
        for p in plan {
            let a = SyntheticCohort.generate(p, size: [16, 32, 32], seed: 4)
            let b = SyntheticCohort.generate(p, size: [16, 32, 32], seed: 4)
            #expect(a.image == b.image && a.lung == b.lung && a.infection == b.infection)
            let lung = a.lung.filter { $0 == 1 }.count
            #expect(lung > 0)
            #expect(zip(a.infection, a.lung).allSatisfy { $0.0 == 0 || $0.1 == 1 }, "infection outside the lung")
            #expect(abs(Double(a.ratio) - Double(a.infection.filter { $0 == 1 }.count) / Double(lung)) < 1e-6)
        }
        let other = SyntheticCohort.generate(plan[0], size: [16, 32, 32], seed: 5)
        #expect(other.image != SyntheticCohort.generate(plan[0], size: [16, 32, 32], seed: 4).image)
    }

    @Test func lesionsDifferByClass() {
        // COVID-19 lesions are ground glass (darker), CAP consolidation (near soft tissue).
        let plan = SyntheticCohort.plan(cases: 40, seed: 2).filter { $0.targetRatio > 0.03 }
        var mean: [Label: [Double]] = [:]
        for p in plan {
            let v = SyntheticCohort.generate(p, size: [24, 48, 48], seed: 2)
            let lesion = v.image.indices.filter { v.infection[$0] == 1 }.map { Double(v.image[$0]) }
            if !lesion.isEmpty { mean[p.label, default: []].append(lesion.reduce(0, +) / Double(lesion.count)) }
        }
        let covid = mean[.covid]!.reduce(0, +) / Double(mean[.covid]!.count)
        let cap = mean[.cap]!.reduce(0, +) / Double(mean[.cap]!.count)
        // Window [-1350, 150] → [0, 255]: GGO −450 HU ≈ 153, consolidation 25 HU ≈ 234.
        #expect(covid < 180 && cap > 210, "mean lesion value: covid \(covid), cap \(cap)")
    }

    @Test func writeThenCohortAndInspect() throws {
        let dir = try temporaryDirectory("synth")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let infos = try SyntheticCohort.write(directory: dir, cases: 9, size: [16, 24, 20], seed: 1, shardSize: 4)
        let cohort = try Cohort(directory: dir)
        #expect(cohort.shards.count == 3 && cohort.cases == infos && cohort.size == [16, 24, 20])
        let report = try Inspection.run(directory: dir)
        #expect(report.isValid, "\(report.problems)")
    }
}

import Tensor

/// k-fold cross-validation split by patient and stratified by label (DESIGN.md §6).
///
/// All scans of a patient land in one fold. Patients of each label are shuffled with the seed,
/// then placed largest first (by scan count) into the fold that has the fewest cases of that
/// label so far (lowest fold index on ties): the per-label case counts of the folds then differ
/// by at most one whenever enough single-scan patients exist, which synthetic and real cohorts
/// have. Every fold must receive a case: more folds than patients of the larger label are refused.
public struct Folds: Sendable {
    /// `fold[i]` is the fold of cohort case i.
    public let fold: [Int]
    public let count: Int

    public init(cases: [CaseInfo], folds k: Int, seed: UInt64) throws {
        precondition(k >= 2, "Folds: need at least 2 folds, got \(k)")
        var byPatient: [String: [Int]] = [:]
        var patientOrder: [String] = []
        for (i, c) in cases.enumerated() {
            if byPatient[c.patientID] == nil { patientOrder.append(c.patientID) }
            byPatient[c.patientID, default: []].append(i)
        }
        var fold = [Int](repeating: -1, count: cases.count)
        for label in Label.allCases {
            var patients = patientOrder.filter { cases[byPatient[$0]![0]].label == label }
            for p in patients {
                if let mixed = byPatient[p]!.first(where: { cases[$0].label != label }) {
                    throw DataError(file: "cohort", caseID: cases[mixed].caseID,
                                    "patient \(p) has scans labelled both COVID-19 and CAP; fix the labels")
                }
            }
            var rng = SplitMix64(seed: derivedSeed(seed, UInt64(label.rawValue), Stream.folds.rawValue))
            for i in stride(from: patients.count - 1, to: 0, by: -1) {
                patients.swapAt(i, Int(rng.next() % UInt64(i + 1)))
            }
            // Stable sort by scan count, largest first: shuffled order breaks ties.
            patients = patients.enumerated().sorted {
                let a = byPatient[$0.element]!.count, b = byPatient[$1.element]!.count
                return a != b ? a > b : $0.offset < $1.offset
            }.map(\.element)
            var load = [Int](repeating: 0, count: k)
            for p in patients {
                let f = load.indices.min { load[$0] != load[$1] ? load[$0] < load[$1] : $0 < $1 }!
                for i in byPatient[p]! { fold[i] = f }
                load[f] += byPatient[p]!.count
            }
        }
        // A fold without a case can neither validate nor be left out: refuse the split (issue 16:
        // `--folds 50 --fold 49` on 16 patients trained without validation and exited 0).
        let used = Set(fold)
        let empty = (0..<k).filter { !used.contains($0) }
        if !empty.isEmpty {
            let perLabel = Label.allCases.map { label in Set(cases.filter { $0.label == label }.map(\.patientID)).count }
            let largest = max(2, perLabel.max() ?? 0)
            let contiguous = empty == Array(empty[0]...empty[empty.count - 1])
            let list = empty.count == 1 ? "fold \(empty[0])"
                : contiguous ? "folds \(empty[0])…\(empty[empty.count - 1]) (\(empty.count))"
                : "folds \(empty.map(String.init).joined(separator: ", "))"
            throw DataError(file: "cohort", "\(k) folds of \(byPatient.count) patients (\(perLabel[Int(Label.covid.rawValue)]) COVID-19, \(perLabel[Int(Label.cap.rawValue)]) CAP; all scans of a patient share a fold, split per label) leave \(list) without a case; use --folds \(largest) or fewer" + InputRules.seePage)
        }
        self.fold = fold
        self.count = k
    }

    /// Cohort indices of fold `k` (validation) and of the other folds (training), in cohort order.
    public func split(_ k: Int) -> (train: [Int], validation: [Int]) {
        precondition(k >= 0 && k < count, "Folds.split: fold \(k) of \(count)")
        var train: [Int] = [], validation: [Int] = []
        for (i, f) in fold.enumerated() { if f == k { validation.append(i) } else { train.append(i) } }
        return (train, validation)
    }
}

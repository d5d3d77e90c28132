import CTData

/// Which cases a run trains on and which it validates on: with `fold` ≥ 0 the folds of the
/// training directory split it (validation is that fold), otherwise every training case trains
/// and `--val DIR`, if given, validates. Checks that every training case has an infection mask and
/// that validation volumes have the training size.
public struct TrainingSplit {
    /// The training directory's cases.
    public let cohort: Cohort
    /// Indices into `cohort` of the cases that train.
    public let trainIndices: [Int]
    /// The cohort validation cases come from (`cohort` itself for a fold, the `--val` directory
    /// otherwise); nil without validation.
    public let validationCohort: Cohort?
    /// Indices into `validationCohort` of the validation cases (empty without validation).
    public let validationIndices: [Int]

    public init(request: TrainRequest) throws {
        let cohort = try Cohort(directory: request.data)
        let config = request.config
        self.cohort = cohort
        if config.fold >= 0 {
            if request.validation != nil {
                throw ConfigError(source: "--val", message: "give either --fold (validation is that fold) or --val DIR, not both")
            }
            let split = try Folds(cases: cohort.cases, folds: config.folds, seed: config.seed).split(config.fold)
            trainIndices = split.train
            validationIndices = split.validation
            validationCohort = cohort
        } else {
            trainIndices = Array(cohort.cases.indices)
            if let v = request.validation {
                let vc = try Cohort(directory: v)
                validationCohort = vc
                validationIndices = Array(vc.cases.indices)
            } else {
                validationCohort = nil
                validationIndices = []
            }
        }
        if let bad = trainIndices.first(where: { !cohort.cases[$0].hasInfectionMask }) {
            let (reader, _) = cohort.shard(of: bad)
            throw DataError(file: reader.path, caseID: cohort.cases[bad].caseID,
                            "has no infection mask (infection_ratio is NaN); such a case can be predicted on but not trained on — move it to a predict-only directory")
        }
        if let vc = validationCohort, vc.size != cohort.size {
            throw DataError(file: vc.directory, "volumes are \(vc.size) but the training data has \(cohort.size); validation must share the size")
        }
    }
}

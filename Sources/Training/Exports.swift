// Training's API speaks Evaluation's types (a validation's `Metrics`, `EpochRecord.validation`),
// so a module that imports Training sees them too.
@_exported import Evaluation

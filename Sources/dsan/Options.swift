import ArgumentParser
import Model

/// `--size DxHxW` (`VolumeSize`, in Model).
extension VolumeSize: ExpressibleByArgument {}

/// Thread counts from a comma-separated list ("1,2,16"), nil unless every entry is a positive
/// integer (`dsan bench kernels --threads`, `dsan bench granularity --threads`).
func parseThreadCounts(_ text: String) -> [Int]? {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? 0) >= 1 }) else { return nil }
    return parts.map { $0! }
}

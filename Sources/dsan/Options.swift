import ArgumentParser
import Model

/// `--size DxHxW` (`VolumeSize`, in Model).
extension VolumeSize: ExpressibleByArgument {}

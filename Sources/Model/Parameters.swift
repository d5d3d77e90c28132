import NN

/// A learnable tensor with its gradient, under its PyTorch `state_dict` name.
public struct Parameter {
    public let name: String
    public let value: Tensor
    public let gradient: Tensor
}

/// A tensor of state that is not learned (batch-norm running statistics), under its
/// `state_dict` name. `num_batches_tracked` is held by its `BatchNorm3d` and exposed as a
/// one-element tensor on save and load.
public struct Buffer {
    public let name: String
    public let value: Tensor
}

/// Collects parameters and buffers in registration order, the order PyTorch's `state_dict` lists
/// them: for each module, its parameters, then its buffers, then its children.
public final class ParameterRegistry {
    public private(set) var parameters: [Parameter] = []
    public private(set) var buffers: [Buffer] = []
    public private(set) var batchNorms: [(name: String, layer: BatchNorm3d)] = []

    func parameter(_ name: String, _ value: Tensor, _ gradient: Tensor) {
        precondition(value.shape == gradient.shape, "parameter \(name): \(value) vs gradient \(gradient)")
        parameters.append(Parameter(name: name, value: value, gradient: gradient))
    }

    func batchNorm(_ prefix: String, _ bn: BatchNorm3d) {
        parameter(prefix + ".weight", bn.weight, bn.dWeight)
        parameter(prefix + ".bias", bn.bias, bn.dBias)
        buffers.append(Buffer(name: prefix + ".running_mean", value: bn.runningMean))
        buffers.append(Buffer(name: prefix + ".running_var", value: bn.runningVar))
        batchNorms.append((prefix, bn))
    }
}

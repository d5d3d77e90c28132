/// What a model of a configuration needs in memory, computed from the configuration alone —
/// before anything is allocated — so that a width or size whose tensors cannot exist is refused
/// with an error instead of ending the process in the allocator.
///
/// Counts are `Double`: a width of 10⁵ gives ~10¹⁴ parameters, and a width of 10¹⁰ would
/// overflow `Int` arithmetic.
public struct ModelFootprint: Sendable, Equatable {
    /// Parameters (conv weights, batch-norm weight and bias, fc.weight): `registry.parameters`.
    public var parameters: Double
    /// Batch-norm running statistics and `num_batches_tracked` are buffers: 2 floats per channel.
    public var buffers: Double
    /// Floats of the outputs of every convolution of a forward pass of one case at `input`
    /// (conv1, every block's conv1, conv2 and downsample) plus the max-pool output: each is kept
    /// for the backward pass, so this is a lower bound on one case's activations.
    public var activationsPerCase: Double

    public init(config: ModelConfig, input: [Int]) {
        precondition(input.count == 3, "ModelFootprint: input [D, H, W], got \(input)")
        let w = Double(config.width)
        var parameters = 0.0, bnChannels = 0.0, activations = 0.0
        // Output edges of a conv or pool (NN's convOutputSize, without its preconditions).
        func out(_ s: [Int], kernel: Int, stride: Int, padding: Int) -> [Int] {
            s.map { max(0, ($0 + 2 * padding - kernel) / stride + 1) }
        }
        func voxels(_ s: [Int]) -> Double { s.reduce(1.0) { $0 * Double($1) } }
        func conv(_ cin: Double, _ cout: Double, kernel: Int) {
            parameters += cout * cin * Double(kernel * kernel * kernel) + 2 * cout   // weight, BN weight + bias
            bnChannels += cout
        }
        var s = out(input, kernel: 7, stride: ModelConfig.stemStride, padding: 3)
        conv(1, w, kernel: 7)
        activations += w * voxels(s)
        s = out(s, kernel: 3, stride: ModelConfig.poolStride, padding: 1)
        activations += w * voxels(s)
        var cin = w
        for (l, count) in config.blocks.enumerated() {
            let c = w * Double(1 << l)
            for b in 0..<count {
                let stride = b == 0 ? ModelConfig.layerStrides[l] : 1
                let inChannels = b == 0 ? cin : c
                let next = out(s, kernel: 3, stride: stride, padding: 1)
                conv(inChannels, c, kernel: 3)
                conv(c, c, kernel: 3)
                activations += 2 * c * voxels(next)
                if stride != 1 || inChannels != c {
                    conv(inChannels, c, kernel: 1)
                    activations += c * voxels(next)
                }
                s = next
            }
            cin = c
        }
        parameters += cin   // fc.weight [1, C4]
        self.parameters = parameters
        self.buffers = 2 * bnChannels
        self.activationsPerCase = activations
    }

    /// Bytes one training rank needs at least: every parameter four times (value, gradient and
    /// Adam's two moments), the buffers, and the activations of `cases` cases, all float32.
    public func trainingBytes(cases: Int) -> Double {
        4 * (4 * parameters + buffers + Double(cases) * activationsPerCase)
    }

    /// Bytes the weights alone take (parameters and buffers, float32): a lower bound for any use.
    public var weightBytes: Double { 4 * (parameters + buffers) }
}

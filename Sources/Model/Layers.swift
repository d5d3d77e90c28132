import NN

/// Conv3d (no bias) → BatchNorm3d, optionally → ReLU: the unit every ResNet layer is built of.
///
/// Forward keeps the conv output (the batch norm's backward needs its input) and the block
/// output (the ReLU's backward and the next layer's weight gradient need it). Activations are
/// allocated by `allocate(input:)` for one input shape and reused across steps; a caller whose
/// use of the output ends before the backward may give its own storage for it instead
/// (`allocate(input:output:)`), so that no buffer holds it for the whole step.
final class ConvBN {
    let geometry: Conv3dGeometry
    let weight: Tensor       // [Cout, Cin, k, k, k]
    let dWeight: Tensor
    let bn: BatchNorm3d
    let relu: Bool
    private(set) var convOut = Tensor(zeros: [0])   // [N, Cout, Do, Ho, Wo], pre-BN
    private(set) var output = Tensor(zeros: [0])    // [N, Cout, Do, Ho, Wo], post-BN(/ReLU)
    /// Whether `output` is the caller's storage (`allocate(input:output:)`).
    private var outputIsShared = false

    init(_ geometry: Conv3dGeometry, relu: Bool) {
        self.geometry = geometry
        weight = Tensor(zeros: geometry.weightShape)
        dWeight = Tensor(zeros: geometry.weightShape)
        bn = BatchNorm3d(channels: geometry.outChannels)
        self.relu = relu
    }

    func register(_ r: ParameterRegistry, conv: String, bn bnName: String) {
        r.parameter(conv + ".weight", weight, dWeight)
        r.batchNorm(bnName, bn)
    }

    /// Kaiming normal, fan_out, ReLU gain (DESIGN.md §1): std = √(2 / (Cout · k³)).
    func initialize(_ rng: inout SplitMix64) {
        let fanOut = geometry.outChannels * geometry.kernel.volume
        weight.fillNormal(std: Float((2.0 / Double(fanOut)).squareRoot()), rng: &rng)
    }

    /// Allocates activations for `input` and returns the output shape. With `storage` (a tensor of
    /// the output's shape), the output is written there rather than to a buffer of this unit's own:
    /// the caller then owns it, and whatever else it writes there is what `output` reads.
    @discardableResult
    func allocate(input: Shape5, output storage: Tensor? = nil) -> Shape5 {
        let out = geometry.outputShape(for: input)
        if convOut.shape != out.dims { convOut = Tensor(zeros: out.dims) }
        if let storage {
            precondition(storage.shape == out.dims, "ConvBN.allocate: output storage \(storage.shape), expected \(out.dims)")
            output = storage
        } else if output.shape != out.dims || outputIsShared {
            output = Tensor(zeros: out.dims)
        }
        outputIsShared = storage != nil
        return out
    }

    func forward(_ x: Tensor, workspace: ConvWorkspace) {
        convolve(x, workspace: workspace)
        normalize()
    }

    /// The forward's two halves, for a caller that runs several batch norms in one round.
    func convolve(_ x: Tensor, workspace: ConvWorkspace) {
        conv3dForward(y: convOut, x: x, weight: weight, geometry: geometry, workspace: workspace)
    }

    func normalize() {
        bn.forward(convOut, into: output)
        activate()
    }

    /// The batch norm's part of `normalize`, for `BatchNorm3d.forward(together:)`.
    var batchNormForward: (layer: BatchNorm3d, x: Tensor, y: Tensor) { (bn, convOut, output) }

    func activate() {
        if relu { ReLU.forward(output, into: output) }
    }

    /// WRITES dX (when given) from dOutput, ACCUMULATES dWeight and the BN's gradients.
    /// `dOutput` is clobbered (used as scratch for the BN's input gradient). With
    /// `reluApplied`, `dOutput` is already ∂L/∂(BN output), the ReLU's mask applied by the caller
    /// (the stem's, whose output the max pool's backward has overwritten).
    func backward(_ dOutput: Tensor, input x: Tensor, dX: Tensor?, workspace: ConvWorkspace, reluApplied: Bool = false) {
        if relu && !reluApplied { ReLU.backward(dOutput, output: output, into: dOutput) }
        bn.backward(dOutput, input: convOut, into: dOutput)
        backwardConvolution(dOutput, input: x, dX: dX, workspace: workspace)
    }

    /// The conv's part of `backward`, given ∂L/∂(conv output) in `dConvOut`.
    func backwardConvolution(_ dConvOut: Tensor, input x: Tensor, dX: Tensor?, workspace: ConvWorkspace) {
        conv3dBackward(dX: dX, dWeight: dWeight, dY: dConvOut, x: x, weight: weight, geometry: geometry, workspace: workspace)
    }
}

/// ResNet's BasicBlock (DESIGN.md §1): conv3³ → BN → ReLU → conv3³ → BN, plus the shortcut
/// (identity, or 1³ conv → BN with the block's stride when the shape changes: "type B"), → ReLU.
final class BasicBlock {
    let conv1: ConvBN
    let conv2: ConvBN
    let downsample: ConvBN?
    private(set) var output = Tensor(zeros: [0])     // [N, C, D, H, W] after the final ReLU

    init(inChannels: Int, channels: Int, stride: Int) {
        conv1 = ConvBN(Conv3dGeometry(inChannels: inChannels, outChannels: channels, kernel: 3, stride: stride, padding: 1), relu: true)
        conv2 = ConvBN(Conv3dGeometry(inChannels: channels, outChannels: channels, kernel: 3, stride: 1, padding: 1), relu: false)
        downsample = (stride != 1 || inChannels != channels)
            ? ConvBN(Conv3dGeometry(inChannels: inChannels, outChannels: channels, kernel: 1, stride: stride, padding: 0), relu: false)
            : nil
    }

    func register(_ r: ParameterRegistry, _ prefix: String) {
        conv1.register(r, conv: prefix + ".conv1", bn: prefix + ".bn1")
        conv2.register(r, conv: prefix + ".conv2", bn: prefix + ".bn2")
        downsample?.register(r, conv: prefix + ".downsample.0", bn: prefix + ".downsample.1")
    }

    func initialize(_ rng: inout SplitMix64) {
        conv1.initialize(&rng)
        conv2.initialize(&rng)
        downsample?.initialize(&rng)
    }

    var batchNorms: [BatchNorm3d] { [conv1.bn, conv2.bn] + (downsample.map { [$0.bn] } ?? []) }

    /// The second batch norm writes into the block's output, where the residual join then adds
    /// the shortcut and applies the ReLU in place: that BN output is read only by the join (the
    /// batch norm's backward needs its input, the join's backward the block's output), so it
    /// needs no buffer of its own for the step (at 138×256×256 one layer-1 activation, 35 MiB,
    /// per block).
    @discardableResult
    func allocate(input: Shape5) -> Shape5 {
        let out = conv1.geometry.outputShape(for: input)
        if output.shape != out.dims { output = Tensor(zeros: out.dims) }
        conv1.allocate(input: input)
        conv2.allocate(input: out, output: output)
        downsample?.allocate(input: input)
        return out
    }

    /// With a shortcut conv, the second batch norm and the shortcut's share one round of the
    /// synchronised sums (forward and backward): both inputs are ready at the same time.
    func forward(_ x: Tensor, workspace: ConvWorkspace) {
        conv1.forward(x, workspace: workspace)
        let shortcut: Tensor
        if let downsample {
            conv2.convolve(conv1.output, workspace: workspace)
            downsample.convolve(x, workspace: workspace)
            BatchNorm3d.forward(together: [conv2.batchNormForward, downsample.batchNormForward])
            conv2.activate()
            downsample.activate()
            shortcut = downsample.output
        } else {
            conv2.forward(conv1.output, workspace: workspace)
            shortcut = x
        }
        AddReLU.forward(output, shortcut, into: output)   // conv2.output is `output`
    }

    /// WRITES dX from dOutput; `dOutput`, `scratch` and `scratch2` are clobbered. Scratch tensors
    /// have capacity for this block's largest activation and are reshaped here.
    func backward(_ dOutput: Tensor, input x: Tensor, dX: Tensor, scratch: Tensor, scratch2: Tensor,
                  workspace: ConvWorkspace) {
        // dSum = dOutput · [output > 0], the gradient of both addends.
        AddReLU.backward(dOutput, output: output, into: dOutput)
        scratch.reshape(conv1.output.shape)
        if let downsample {
            // Neither second batch norm has a ReLU after it: both see dSum. The shortcut's copy
            // of it goes to scratch2, then the two batch norms' backward sums share one round.
            scratch2.reshape(dOutput.shape)
            Parallel.copy(dOutput, into: scratch2)
            BatchNorm3d.backward(together: [(downsample.bn, scratch2, downsample.convOut, scratch2),
                                            (conv2.bn, dOutput, conv2.convOut, dOutput)])
            downsample.backwardConvolution(scratch2, input: x, dX: dX, workspace: workspace)
            conv2.backwardConvolution(dOutput, input: conv1.output, dX: scratch, workspace: workspace)
        } else {
            Parallel.copy(dOutput, into: dX)
            conv2.backward(dOutput, input: conv1.output, dX: scratch, workspace: workspace)
        }
        scratch2.reshape(x.shape)
        conv1.backward(scratch, input: x, dX: scratch2, workspace: workspace)
        Add.forward(dX, scratch2, into: dX)
    }
}

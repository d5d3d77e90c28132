import NN

/// The network's hyper-parameters. The default is the paper's 3D ResNet34 (DESIGN.md §1);
/// `width` scales every channel count (64 → width, 128 → 2·width, …) for CI and quick demos.
public struct ModelConfig: Codable, Equatable, Sendable {
    /// Channels of conv1 and layer1; layers 2–4 have 2×, 4×, 8×.
    public var width: Int = 64
    /// BasicBlocks per layer: ResNet34's [3, 4, 6, 3].
    public var blocks: [Int] = [3, 4, 6, 3]
    /// The online attention module (paper §III-B); off is the baseline "RN34 + US".
    public var attention: Bool = true

    public init(width: Int = 64, blocks: [Int] = [3, 4, 6, 3], attention: Bool = true) {
        self.width = width
        self.blocks = blocks
        self.attention = attention
    }

    /// The paper's network.
    public static let paper = ModelConfig()

    /// First-block strides of layers 1–4: layer4 keeps stride 1, so the feature map is 1/16 of
    /// the input (DESIGN.md §1).
    public static let layerStrides = [1, 2, 2, 1]
    /// Stride of conv1 (7×7×7) and of the max-pool (3×3×3) that follows it.
    public static let stemStride = 2, poolStride = 2
    /// How much smaller layer4's feature map is than the input in each dimension:
    /// conv1 × max-pool × layers 1–4 = 2 · 2 · 1 · 2 · 2 · 1 = 16.
    public static let downsampling = stemStride * poolStride * layerStrides.reduce(1, *)
    /// The smallest input edge the network takes: one feature-map voxel covers `downsampling`
    /// input voxels, so a smaller volume has no whole voxel of layer4 (DESIGN.md §1: every size
    /// ≥ 16 works). Shards with a smaller D, H or W are refused (Docs/input-rules.md).
    public static let minimumInputEdge = downsampling
}

/// The 3D ResNet34 of DESIGN.md §1 with the online attention module, forward and backward.
///
/// Input `[N, 1, D, H, W]` (image × lung in [0, 1]); output logits `[N, 1]` and, with attention
/// on, the attention map T(A) `[N, 1, D, H, W]`. Every parameter and buffer is registered under
/// its PyTorch `state_dict` name (`conv1.weight`, `layer2.0.downsample.1.running_var`,
/// `fc.weight`, …) in PyTorch's layouts, so checkpoints move between dsan and PyTorch unchanged.
/// Activations are allocated for one input shape at the first forward and reused; a different
/// shape reallocates them. `backward` ACCUMULATES into every parameter gradient (zero them with
/// `zeroGradients()` once per step; micro-batches add up). The zeroing is lazy (`Tensor.zeroLazily`):
/// the first kernel to add into a gradient writes it instead, and `backward` resolves every
/// gradient it did not write before it reports the gradients ready and before it returns.
public final class ResNet3D {
    public let config: ModelConfig
    public let registry = ParameterRegistry()
    let stem: ConvBN
    let pool = MaxPool3dGeometry(kernel: 3, stride: ModelConfig.poolStride, padding: 1)
    let layers: [[BasicBlock]]
    /// fc.weight `[1, C4]` (Linear without bias) and its gradient.
    public let fcWeight: Tensor
    public let fcGradient: Tensor
    public let workspace = ConvWorkspace()
    /// Registry index of each block's first parameter, to report gradient readiness.
    private var blockFirstParameter: [[Int]] = []
    /// Called during `backward` each time more gradients are final, with how many parameters,
    /// counted from the END of the registry (fc.weight first), are complete. Distributed training
    /// starts reducing a gradient bucket as soon as it is covered, while backward goes on.
    public var gradientsReady: ((Int) -> Void)?
    let attention: OnlineAttention

    // Activations of the current input shape.
    private(set) var inputShape: Shape5?
    private var pooled = Tensor(zeros: [0])
    private var poolIndices = IndexTensor(zeros: [0])
    private var features = Tensor(zeros: [0])        // GAP output [N, C4]
    public private(set) var logits = Tensor(zeros: [0])   // [N, 1]
    // Gradient scratch, capacity of the largest activation after the stem.
    private var gradA = Tensor(zeros: [0]), gradB = Tensor(zeros: [0])
    private var gradC = Tensor(zeros: [0]), gradD = Tensor(zeros: [0])
    private var dFeatures = Tensor(zeros: [0])
    private var dStem = Tensor(zeros: [0])
    /// The input of the last forward (the stem's weight gradient needs it).
    private var lastInput: Tensor?

    public init(config: ModelConfig = .paper, seed: UInt64 = 0) {
        precondition(config.width >= 1 && config.blocks.count == 4 && config.blocks.allSatisfy { $0 >= 1 },
                     "ResNet3D: bad config \(config)")
        self.config = config
        let w = config.width
        stem = ConvBN(Conv3dGeometry(inChannels: 1, outChannels: w, kernel: 7, stride: ModelConfig.stemStride, padding: 3), relu: true)
        var layers: [[BasicBlock]] = []
        var inChannels = w
        for (l, count) in config.blocks.enumerated() {
            let channels = w << l
            layers.append((0..<count).map { b in
                let block = BasicBlock(inChannels: b == 0 ? inChannels : channels, channels: channels,
                                       stride: b == 0 ? ModelConfig.layerStrides[l] : 1)
                return block
            })
            inChannels = channels
        }
        self.layers = layers
        fcWeight = Tensor(zeros: [1, inChannels])
        fcGradient = Tensor(zeros: [1, inChannels])
        attention = OnlineAttention(channels: inChannels)

        stem.register(registry, conv: "conv1", bn: "bn1")
        var firsts: [[Int]] = []
        for (l, blocks) in layers.enumerated() {
            var row: [Int] = []
            for (b, block) in blocks.enumerated() {
                row.append(registry.parameters.count)
                block.register(registry, "layer\(l + 1).\(b)")
            }
            firsts.append(row)
        }
        blockFirstParameter = firsts
        registry.parameter("fc.weight", fcWeight, fcGradient)
        initialize(seed: seed)
    }

    /// Channels of layer4's output (512 for the paper's width).
    public var featureChannels: Int { fcWeight.shape[1] }

    /// DESIGN.md §1 initialisation: Kaiming normal (fan_out, ReLU) for convs; BN weight 1, bias 0
    /// (BatchNorm3d's own init); fc as PyTorch's Linear default, U(−1/√fan_in, 1/√fan_in).
    public func initialize(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        stem.initialize(&rng)
        for blocks in layers { for b in blocks { b.initialize(&rng) } }
        let bound = Float(1 / Double(featureChannels).squareRoot())
        fcWeight.fillUniform(-bound, bound, rng: &rng)
    }

    /// Every batch norm, in registration order (for the SyncBN seam and train/eval switching).
    public var batchNorms: [BatchNorm3d] { registry.batchNorms.map(\.layer) }

    /// Training mode (batch statistics) or eval mode (running statistics).
    public var training: Bool = true {
        didSet { for bn in batchNorms { bn.training = training } }
    }

    /// Sets the cross-rank reduction of every batch norm (Training's `SyncBatchNorm` sets a sum over
    /// all ranks); nil for one rank.
    public func setBatchNormAllReduce(_ reduce: BatchNormAllReduce?) {
        for bn in batchNorms { bn.allReduce = reduce }
    }

    /// Sets every parameter gradient to zero, lazily (`Tensor.zeroLazily`): the next `backward`
    /// writes or resolves each, so nothing reads or writes 254 MB of zeros. Read the gradients only
    /// after a `backward` (or call `resolveGradients()`). With `DSAN_LAZY_ZEROS=0` the zeros are
    /// written at once, as before (for comparisons; the results are the same).
    public func zeroGradients() {
        for p in registry.parameters { p.gradient.zeroLazily() }
        if !Tensor.zerosLazily { resolveGradients() }
    }

    /// Writes the zeros of every gradient still lazily zero (`zeroGradients` without a
    /// `backward` since, or a parameter the last pass did not reach): the parameters from index
    /// `first` on.
    public func resolveGradients(from first: Int = 0) {
        var pending: [Tensor] = []
        for p in registry.parameters[first...] where p.gradient.isLazilyZero {
            _ = p.gradient.takeLazyZero()
            pending.append(p.gradient)
        }
        if !pending.isEmpty { Parallel.zero(pending) }
    }

    /// Reports the last `count` parameters' gradients final, with none of them left lazily zero.
    private func announceReady(_ count: Int) {
        resolveGradients(from: registry.parameters.count - count)
        gradientsReady?(count)
    }

    /// For a model that only infers (`dsan predict`, `bench step --inference`): zeroes every
    /// parameter gradient and gives its memory back to the kernel (`Tensor.zeroReleasingPages`),
    /// 242 MiB at width 64 that a training model needs and an inferring one never reads. A
    /// backward afterwards still works: the gradients read as zero and take memory as it writes.
    public func releaseGradients() {
        for p in registry.parameters { p.gradient.zeroReleasingPages() }
    }

    /// The shape of layer4's output for an input shape (1/16 of the input in every dimension).
    public func featureShape(for input: Shape5) -> Shape5 {
        var s = stem.geometry.outputShape(for: input)
        s = pool.outputShape(for: s)
        for blocks in layers { for b in blocks { s = b.conv1.geometry.outputShape(for: s) } }
        return s
    }

    /// Every convolution of a forward pass with the shape of its input, in execution order
    /// (the attention branch's 1×1×1 conv last when attention is on).
    public func convolutions(for input: Shape5) -> [(name: String, geometry: Conv3dGeometry, input: Shape5)] {
        var list: [(String, Conv3dGeometry, Shape5)] = [("conv1", stem.geometry, input)]
        var s = pool.outputShape(for: stem.geometry.outputShape(for: input))
        for (l, blocks) in layers.enumerated() {
            for (b, block) in blocks.enumerated() {
                let prefix = "layer\(l + 1).\(b)"
                list.append((prefix + ".conv1", block.conv1.geometry, s))
                let mid = block.conv1.geometry.outputShape(for: s)
                list.append((prefix + ".conv2", block.conv2.geometry, mid))
                if let d = block.downsample { list.append((prefix + ".downsample.0", d.geometry, s)) }
                s = mid
            }
        }
        if config.attention { list.append(("attention", attention.geometry, s)) }
        return list
    }

    /// Floating-point operations of the convolutions of one forward pass (the rest of the network
    /// is under 1 % of it). A training step is about three times this: the forward, the input
    /// gradient and the weight gradient of every conv (the stem needs no input gradient).
    public func forwardFLOPs(for input: Shape5) -> Double {
        convolutions(for: input).reduce(0) { $0 + $1.geometry.flops(input: $1.input) }
    }

    private func allocate(_ input: Shape5) {
        if inputShape == input { return }
        // The stem's BN + ReLU output is read only by the max pool's forward; the pool's backward
        // needs its indices and its own output, not that one. So the stem's gradient overwrites
        // it: one stem-sized buffer (276 MiB at 138×256×256) instead of two.
        var s = stem.geometry.outputShape(for: input)
        dStem = Tensor(zeros: s.dims)
        stem.allocate(input: input, output: dStem)
        var largest = 0
        s = pool.outputShape(for: s)
        pooled = Tensor(zeros: s.dims)
        poolIndices = IndexTensor(zeros: s.dims)
        largest = max(largest, s.count)
        for blocks in layers {
            for b in blocks {
                s = b.allocate(input: s)
                largest = max(largest, s.count)
            }
        }
        features = Tensor(zeros: [input.n, featureChannels])
        dFeatures = Tensor(zeros: [input.n, featureChannels])
        logits = Tensor(zeros: [input.n, 1])
        gradA = Tensor(zeros: [largest]); gradB = Tensor(zeros: [largest])
        gradC = Tensor(zeros: [largest]); gradD = Tensor(zeros: [largest])
        attention.allocate(features: s, input: input, forTraining: true)
        inputShape = input
    }

    /// layer4's output of the last forward, `[N, C4, d, h, w]`.
    public var featureMap: Tensor { lastFeatures ?? layers[3].last!.output }
    private var lastFeatures: Tensor?

    // Eval-mode buffers: nothing is kept for a backward, so one stem-sized buffer and four
    // buffers of the largest later activation serve every layer in turn.
    private var inferenceShape: Shape5?
    private var inferenceStem = Tensor(zeros: [0])
    private var inferenceBuffers: [Tensor] = []
    private var inferenceIndices = IndexTensor(zeros: [0])

    private func allocateInference(_ input: Shape5) {
        if inferenceShape == input { return }
        let stemShape = stem.geometry.outputShape(for: input)
        var s = pool.outputShape(for: stemShape)
        var largest = s.count
        for blocks in layers { for b in blocks { s = b.conv1.geometry.outputShape(for: s); largest = max(largest, s.count) } }
        inferenceStem = Tensor(zeros: stemShape.dims)
        inferenceIndices = IndexTensor(zeros: pool.outputShape(for: stemShape).dims)
        inferenceBuffers = (0..<4).map { _ in Tensor(zeros: [largest]) }
        features = Tensor(zeros: [input.n, featureChannels])
        logits = Tensor(zeros: [input.n, 1])
        attention.allocate(features: s, input: input, forTraining: false)
        inferenceShape = input
        inputShape = nil   // the training buffers (if any) no longer match `features` and `logits`
    }

    /// Eval-mode forward through shared buffers (batch norms use running statistics, in place).
    private func inferenceForward(_ input: Tensor, explain: Bool) -> Tensor {
        let shape = input.shape5
        allocateInference(shape)
        let y = inferenceStem
        conv3dForward(y: y, x: input, weight: stem.weight, geometry: stem.geometry, workspace: workspace)
        stem.bn.forward(y, into: y)
        ReLU.forward(y, into: y)
        var x = inferenceBuffers[0]
        x.reshape(pool.outputShape(for: y.shape5).dims)
        maxPool3dForward(y: x, indices: inferenceIndices, x: y, geometry: pool)
        for blocks in layers {
            for b in blocks {
                let free = inferenceBuffers.filter { $0 !== x }
                let (h, out, shortcut) = (free[0], free[1], free[2])
                func unit(_ u: ConvBN, _ input: Tensor, into t: Tensor) {
                    t.reshape(u.geometry.outputShape(for: input.shape5).dims)
                    conv3dForward(y: t, x: input, weight: u.weight, geometry: u.geometry, workspace: workspace)
                    u.bn.forward(t, into: t)
                    if u.relu { ReLU.forward(t, into: t) }
                }
                unit(b.conv1, x, into: h)
                unit(b.conv2, h, into: out)
                if let d = b.downsample {
                    unit(d, x, into: shortcut)
                    AddReLU.forward(out, shortcut, into: out)
                } else {
                    AddReLU.forward(out, x, into: out)
                }
                x = out
            }
        }
        lastFeatures = x
        globalAveragePoolForward(y: features, x: x)
        linearForward(y: logits, x: features, weight: fcWeight)
        if config.attention || explain {
            attention.forward(features: x, fcWeight: fcWeight, threshold: config.attention, workspace: workspace)
        }
        return logits
    }

    /// Forward pass: logits `[N, 1]` (returned; owned by the model) and, when attention is on
    /// (or `explain` is set), the attention map (`attentionMap`). `input` is `[N, 1, D, H, W]`.
    @discardableResult
    public func forward(_ input: Tensor, explain: Bool = false) -> Tensor {
        let shape = input.shape5
        precondition(shape.c == 1, "ResNet3D.forward: input \(shape), expected one channel")
        if !training { return inferenceForward(input, explain: explain) }
        lastFeatures = nil
        if inferenceShape != nil {   // back to training: release the eval-mode buffers
            inferenceShape = nil
            inferenceStem = Tensor(zeros: [0])
            inferenceBuffers = []
            inferenceIndices = IndexTensor(zeros: [0])
        }
        allocate(shape)
        lastInput = input
        stem.forward(input, workspace: workspace)
        maxPool3dForward(y: pooled, indices: poolIndices, x: stem.output, geometry: pool)
        var x = pooled
        for blocks in layers {
            for b in blocks {
                b.forward(x, workspace: workspace)
                x = b.output
            }
        }
        globalAveragePoolForward(y: features, x: x)
        linearForward(y: logits, x: features, weight: fcWeight)
        if config.attention || explain {
            attention.forward(features: x, fcWeight: fcWeight, threshold: config.attention, workspace: workspace)
        }
        return logits
    }

    /// T(A) `[N, 1, D, H, W]` of the last forward with attention on; with attention off and
    /// `explain`, the normalised class activation map (Grad-CAM on layer4; see `OnlineAttention`).
    public var attentionMap: Tensor { attention.output }

    /// Backward pass of the last forward. `dLogits` `[N, 1]` is ∂L/∂logits; `dAttention`
    /// `[N, 1, D, H, W]` is ∂L/∂T(A) (nil when the attention loss is off). ACCUMULATES into
    /// every parameter gradient; the attention branch never reaches `fc.weight` (DESIGN.md §1).
    public func backward(dLogits: Tensor, dAttention: Tensor?) {
        guard let input = inputShape, lastFeatures == nil else {
            preconditionFailure("ResNet3D.backward without a training-mode forward")
        }
        let f = featureMap
        // fc and GAP.
        linearBackward(dX: dFeatures, dWeight: fcGradient, dY: dLogits, x: features, weight: fcWeight)
        let total = registry.parameters.count
        announceReady(1)
        var dOut = gradA
        dOut.reshape(f.shape)
        globalAveragePoolBackward(dX: dOut, dY: dFeatures)
        if let dAttention {
            precondition(config.attention, "ResNet3D.backward: attention gradient with attention off")
            attention.backward(dAttention, features: f, fcWeight: fcWeight, addInto: dOut, scratch: gradB, workspace: workspace)
        }
        // Layers in reverse.
        var spare = gradB
        for l in stride(from: 3, through: 0, by: -1) {
            for k in stride(from: layers[l].count - 1, through: 0, by: -1) {
                let block = layers[l][k]
                let x = k > 0 ? layers[l][k - 1].output : (l > 0 ? layers[l - 1].last!.output : pooled)
                spare.reshape(x.shape)
                block.backward(dOut, input: x, dX: spare, scratch: gradC, scratch2: gradD, workspace: workspace)
                announceReady(total - blockFirstParameter[l][k])
                swap(&dOut, &spare)
            }
        }
        // Max-pool, then the stem (no input gradient needed).
        // dStem holds the stem's output until this writes it; the stem's ReLU mask comes from
        // the pool's output instead (`passingWhere`).
        maxPool3dBackward(dX: dStem, dY: dOut, indices: poolIndices, passingWhere: pooled)
        stem.backward(dStem, input: lastInput!, dX: nil, workspace: workspace, reluApplied: true)
        announceReady(total)
        precondition(lastInput!.shape5 == input, "ResNet3D.backward: input changed since forward")
    }
}

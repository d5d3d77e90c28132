import NN

/// The online attention module (paper §III-B, DESIGN.md §1), on layer4's features f
/// `[N, C, d, h, w]` with the fc weight w `[1, C]` used as a 1×1×1 kernel, **detached**:
///
/// 1. A = ReLU(conv1×1×1(f, w))                       `[N, 1, d, h, w]`   (Eq. 1, the CAM)
/// 2. U = trilinear upsampling of A to the input size  `[N, 1, D, H, W]`   (align_corners = false)
/// 3. Â = (U − min) / max(max − min, 1e-5) per sample
/// 4. T(A) = σ(α (Â − β)), α = 100, β = 0.4           (Eq. 2)
///
/// The backward gives ∂L/∂f only: the attention loss never updates w. With the threshold off
/// (attention module disabled), the output is Â, the class activation map normalised to [0, 1].
/// For this head (global average pooling then a linear layer) Grad-CAM on layer4 has channel
/// weights ∂logit/∂f_c averaged over space = w_c / (d·h·w), so Grad-CAM = ReLU(Σ_c w_c f_c)/(dhw):
/// after min-max normalisation it is exactly Â. That is the baseline's explanation map.
final class OnlineAttention {
    let channels: Int
    let geometry: Conv3dGeometry
    let kernel: Tensor                  // [1, C, 1, 1, 1], a detached copy of fc.weight
    private(set) var cam = Tensor(zeros: [0])          // A [N, 1, d, h, w]
    private(set) var upsampled = Tensor(zeros: [0])    // U [N, 1, D, H, W]
    private(set) var normalized = Tensor(zeros: [0])   // Â
    private(set) var output = Tensor(zeros: [0])       // T(A), or Â when the threshold is off
    private var extrema = Tensor(zeros: [0])           // [N, 2]
    private var gradient = Tensor(zeros: [0])          // [N, 1, D, H, W] scratch
    private var dCam = Tensor(zeros: [0])              // [N, 1, d, h, w]
    private var upsampler: TrilinearUpsample?
    private var thresholded = true

    init(channels: Int) {
        self.channels = channels
        geometry = Conv3dGeometry(inChannels: channels, outChannels: 1, kernel: 1)
        kernel = Tensor(zeros: geometry.weightShape)
    }

    /// Buffers for features `f` and input size; the gradient buffers only `forTraining`.
    func allocate(features f: Shape5, input: Shape5, forTraining: Bool) {
        let small = [f.n, 1, f.d, f.h, f.w], large = [input.n, 1, input.d, input.h, input.w]
        cam = Tensor(zeros: small)
        dCam = Tensor(zeros: forTraining ? small : [0])
        upsampled = Tensor(zeros: large)
        normalized = Tensor(zeros: large)
        output = Tensor(zeros: large)
        gradient = Tensor(zeros: forTraining ? large : [0])
        extrema = Tensor(zeros: [input.n, 2])
        upsampler = TrilinearUpsample(input: (f.d, f.h, f.w), output: (input.d, input.h, input.w))
    }

    func forward(features f: Tensor, fcWeight: Tensor, threshold: Bool, workspace: ConvWorkspace) {
        kernel.assign(fcWeight)   // detach: the branch has its own copy of w
        thresholded = threshold
        conv3dForward(y: cam, x: f, weight: kernel, geometry: geometry, workspace: workspace)
        ReLU.forward(cam, into: cam)
        upsampler!.forward(cam, into: upsampled)
        MinMaxNormalization.forward(upsampled, into: normalized, extrema: extrema)
        if threshold {
            AttentionThreshold.forward(normalized, into: output)
        } else {
            output.assign(normalized)
        }
    }

    /// ADDS ∂L/∂f to `dF` `[N, C, d, h, w]`, given dT = ∂L/∂T(A). `scratch` has capacity for f.
    func backward(_ dT: Tensor, features f: Tensor, fcWeight: Tensor, addInto dF: Tensor, scratch: Tensor,
                  workspace: ConvWorkspace) {
        precondition(thresholded, "OnlineAttention.backward: the forward ran without the threshold")
        AttentionThreshold.backward(dT, output: output, into: gradient)
        MinMaxNormalization.backward(gradient, input: upsampled, extrema: extrema, into: gradient)
        upsampler!.backward(gradient, into: dCam)
        ReLU.backward(dCam, output: cam, into: dCam)
        scratch.reshape(f.shape)
        conv3dBackward(dX: scratch, dWeight: nil, dY: dCam, x: f, weight: kernel, geometry: geometry, workspace: workspace)
        Add.forward(dF, scratch, into: dF)
    }
}

// NN: the layers of the 3D ResNet and its attention module, each as a forward/backward pair over
// `Tensor` (see Docs/architecture.md). One file per layer family.
@_exported import Tensor

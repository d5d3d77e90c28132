import Foundation
import HDF5
import NN
import Testing
@testable import Model

@Suite struct FootprintTests {
    /// The estimate counts what a built model holds: its parameters and buffers one by one, and
    /// the outputs of its convolutions and max-pool for the same input.
    @Test(arguments: [(2, [3, 4, 6, 3], [16, 20, 18]), (3, [1, 1, 1, 1], [17, 33, 40]), (4, [2, 1, 1, 2], [40, 70, 90])])
    func matchesTheBuiltModel(width: Int, blocks: [Int], input: [Int]) {
        let config = ModelConfig(width: width, blocks: blocks, attention: false)
        let model = ResNet3D(config: config)
        let footprint = ModelFootprint(config: config, input: input)
        #expect(footprint.parameters == Double(model.registry.parameters.reduce(0) { $0 + $1.value.count }))
        #expect(footprint.buffers == Double(model.registry.buffers.reduce(0) { $0 + $1.value.count }))
        let shape = Shape5(n: 1, c: 1, d: input[0], h: input[1], w: input[2])
        let convolutions = model.convolutions(for: shape)
        let stem = convolutions[0].geometry.outputShape(for: shape)
        let pooled = MaxPool3dGeometry(kernel: 3, stride: ModelConfig.poolStride, padding: 1).outputShape(for: stem)
        let outputs = convolutions.reduce(0) { $0 + $1.geometry.outputShape(for: $1.input).count } + pooled.count
        #expect(footprint.activationsPerCase == Double(outputs))
        // The attention module has no weights of its own.
        #expect(ModelFootprint(config: ModelConfig(width: width, blocks: blocks, attention: true), input: input).parameters == footprint.parameters)
    }

    @Test func aWidthNoMachineHolds() {
        // --width 100000 (issue 16): ~10¹⁴ parameters, far beyond any machine; no Int overflow.
        let huge = ModelFootprint(config: ModelConfig(width: 100_000), input: [16, 32, 32])
        #expect(huge.trainingBytes(cases: 1) > 1e15)
        #expect(ModelFootprint(config: ModelConfig(width: 1 << 40), input: [16, 16, 16]).parameters.isFinite)
    }

    /// The minimum input edge follows the strides: 16 voxels leave one voxel of layer4, and the
    /// constant changes if a stride does.
    @Test func minimumInputEdgeIsTheTotalStride() {
        let model = ResNet3D(config: ModelConfig(width: 2, blocks: [1, 1, 1, 1]))
        let m = ModelConfig.minimumInputEdge
        #expect(m == 16)
        let edge = model.featureShape(for: Shape5(n: 1, c: 1, d: m, h: m, w: m))
        #expect(edge.d == 1 && edge.h == 1 && edge.w == 1, "\(edge)")
        // Twice the edge gives twice the feature map: the downsampling is exactly m.
        let double = model.featureShape(for: Shape5(n: 1, c: 1, d: 2 * m, h: 4 * m, w: 8 * m))
        #expect(double.d == 2 && double.h == 4 && double.w == 8, "\(double)")
    }
}

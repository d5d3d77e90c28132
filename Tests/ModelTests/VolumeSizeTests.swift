import Testing
@testable import Model

/// `VolumeSize`, the `DxHxW` of `--size`.
@Suite struct VolumeSizeTests {
    @Test func parsesThreeEdgesInTheAcceptedRange() {
        #expect(VolumeSize(argument: "138x256x256") == VolumeSize(138, 256, 256))
        #expect(VolumeSize(argument: "16X32x4096") == VolumeSize(16, 32, 4096))
        #expect(VolumeSize(argument: "138x256x256")?.dims == [138, 256, 256])
        #expect(VolumeSize(138, 256, 256).description == "138x256x256")
        #expect(VolumeSize.minimum == ModelConfig.minimumInputEdge)
    }

    @Test func refusesWhatIsNotDxHxWInRange() {
        let edge = VolumeSize.minimum
        for bad in ["\(edge - 1)x64x64", "64x64x4097", "64x64", "64x64x64x64", "64x64xa", "", "64×64×64", "-64x64x64"] {
            #expect(VolumeSize(argument: bad) == nil, "\(bad)")
        }
        #expect(VolumeSize(argument: "\(edge)x\(edge)x\(edge)") != nil)
    }
}

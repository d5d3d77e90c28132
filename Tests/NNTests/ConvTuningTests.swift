import Testing
@testable import NN

/// `ConvTuning`'s overrides (for `dsan bench tuning`) reach the constants the convs read, inside
/// their task's scope only; outside they are the defaults the code documents.
@Suite struct ConvTuningTests {
    @Test func overridesHoldInsideTheirScopeOnly() {
        #expect(maximumConvJobs == 64 && manyPositions == 2048 && WinogradConv.blockBytes == 8 << 20)
        #expect(transformGrain(64, 2) == 8)   // four items per worker
        for s in ConvTuning.Setting.allCases { #expect(ConvTuning.value(s) == s.defaultValue, "\(s)") }
        ConvTuning.with(.convJobs, 16) {
            #expect(maximumConvJobs == 16)
            ConvTuning.with(.winogradBlockMiB, 2) { #expect(WinogradConv.blockBytes == 2 << 20 && maximumConvJobs == 16) }
            #expect(WinogradConv.blockBytes == 8 << 20)
        }
        #expect(maximumConvJobs == 64)
        // layer3.0.conv1 at 138×256×256: 32 blocks from 2048 positions, 8 when the threshold is 4096.
        #expect(backwardChannelBlocks(channels: 128, positions: 2304) == 32)
        ConvTuning.with(.stridedBackwardPositions, 4096) { #expect(backwardChannelBlocks(channels: 128, positions: 2304) == 8) }
        // The stem at 64×128×128 (172 tiles, one block): 64 chunks, 34 with at most 34 jobs.
        #expect(positionChunks(tiles: 172, blocks: 1) == 64)
        ConvTuning.with(.convJobs, 34) { #expect(positionChunks(tiles: 172, blocks: 1) == 34) }
        ConvTuning.with(.transformItemsPerWorker, 16) { #expect(transformGrain(64, 2) == 2) }
        #expect(DirectGEMM.selected == .packed)
        ConvTuning.with(.packedDirectForward, 0) {
            #expect(DirectGEMM.selected == .openBLAS && DirectGEMM.selectedForBackward == .packed)
        }
        ConvTuning.with(.packedDirectBackward, 0) {
            #expect(DirectGEMM.selected == .packed && DirectGEMM.selectedForBackward == .openBLAS)
        }
    }
}

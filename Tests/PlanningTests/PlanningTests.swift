import Foundation
import Planning
import Testing

/// Hand-computed checks of the planner's arithmetic (Docs/scaling.md, "The model").
struct CollectiveCostTests {
    let net = NetworkModel(name: "test", latency: 1e-5, bandwidth: 1e9)

    @Test func oneRankCommunicatesNothing() {
        #expect(CollectiveCost.ringAllreduce(bytes: 254e6, ranks: 1, network: net) == 0)
        #expect(CollectiveCost.smallAllreduce(bytes: 8200, ranks: 1, network: net) == 0)
    }

    @Test func ringOnFourRanksSendsTwoChunksPerStep() {
        // 8 MiB on 4 ranks: segments of 2 MiB = 2 messages of 1 MiB; 6 steps.
        // 6 · 2 · 10 µs + 6/4 · 8 388 608 B / 1 GB/s = 120 µs + 12 582 912 ns.
        let t = CollectiveCost.ringAllreduce(bytes: 8_388_608, ranks: 4, network: net)
        #expect(abs(t - 0.012_702_912) < 1e-12)
    }

    @Test func ringOnManyRanksIsLatencyBound() {
        // 25 MiB on 1024 ranks: 25 KiB segments, one message per step; 2046 steps.
        let bytes = 25.0 * 1_048_576
        let t = CollectiveCost.ringAllreduce(bytes: bytes, ranks: 1024, network: net)
        #expect(abs(t - (2046 * 1e-5 + 2046.0 / 1024 * bytes / 1e9)) < 1e-12)
        #expect(abs(t - 0.072_837_6) < 1e-9)
    }

    @Test func smallAllreduceTakesCeilLog2Rounds() {
        let m = 1000.0, round = 1e-5 + 1000 / 1e9
        #expect(abs(CollectiveCost.smallAllreduce(bytes: m, ranks: 2, network: net) - round) < 1e-15)
        #expect(abs(CollectiveCost.smallAllreduce(bytes: m, ranks: 5, network: net) - 3 * round) < 1e-15)
        #expect(abs(CollectiveCost.smallAllreduce(bytes: m, ranks: 8, network: net) - 3 * round) < 1e-15)
        #expect(abs(CollectiveCost.smallAllreduce(bytes: m, ranks: 1024, network: net) - 10 * round) < 1e-15)
    }
}

/// A network measured on its links (`dsan bench allreduce --save-network`): the fixed cost per
/// all-reduce and the queueing of small all-reduces behind a bucket.
struct MeasuredNetworkTests {
    let measured = NetworkModel(name: "m", latency: 50e-6, bandwidth: 0.1e9, allreduceOverhead: 0.1, queueDelay: 0.04)

    @Test func ringPaysTheOverheadOncePerAllreduce() {
        var bare = measured
        bare.allreduceOverhead = 0
        for bytes in [1e6, 25e6, 254e6] {
            let with = CollectiveCost.ringAllreduce(bytes: bytes, ranks: 2, network: measured)
            let without = CollectiveCost.ringAllreduce(bytes: bytes, ranks: 2, network: bare)
            #expect(abs(with - without - 0.1) < 1e-12)
        }
        #expect(CollectiveCost.ringAllreduce(bytes: 25e6, ranks: 1, network: measured) == 0)
    }

    /// Times made by the model itself are fitted back to the model's parameters, on 2 and 4 ranks.
    @Test func fitRecoversTheNetworkThatMadeTheTimes() throws {
        for ranks in [2, 4] {
            let rows = [1.0, 16, 64, 256].map { mb in
                (bytes: mb * 1_048_576, seconds: CollectiveCost.ringAllreduce(bytes: mb * 1_048_576, ranks: ranks, network: measured))
            }
            let idle = CollectiveCost.smallAllreduce(bytes: 0, ranks: ranks, network: measured)
            let fit = try #require(NetworkModel.fitted(name: "fit", ranks: ranks, ring: rows, idleSmall: idle, loadedSmall: idle + 0.04))
            #expect(abs(fit.latency - 50e-6) < 1e-15)
            #expect(abs(fit.bandwidth / 0.1e9 - 1) < 1e-9)
            #expect(abs(fit.allreduceOverhead - 0.1) < 1e-9)
            #expect(abs(fit.queueDelay - 0.04) < 1e-15)
        }
    }

    @Test func fitNeedsTwoSizesAndARisingLine() {
        let one = [(bytes: 1e6, seconds: 0.1)]
        #expect(NetworkModel.fitted(name: "f", ranks: 2, ring: one, idleSmall: 1e-4, loadedSmall: 1e-4) == nil)
        let flat = [(bytes: 1e6, seconds: 0.1), (bytes: 2e6, seconds: 0.1)]
        #expect(NetworkModel.fitted(name: "f", ranks: 2, ring: flat, idleSmall: 1e-4, loadedSmall: 1e-4) == nil)
        let rising = [(bytes: 1e6, seconds: 0.1), (bytes: 2e6, seconds: 0.2)]
        #expect(NetworkModel.fitted(name: "f", ranks: 1, ring: rising, idleSmall: 1e-4, loadedSmall: 1e-4) == nil)
        // A loaded round quicker than an idle one is noise: no queueing, never a negative delay.
        #expect(NetworkModel.fitted(name: "f", ranks: 2, ring: rising, idleSmall: 1e-3, loadedSmall: 5e-4)?.queueDelay == 0)
    }

    /// Profiles written before the two terms existed read as 0; bad values are refused by name.
    @Test func decodingOlderAndBadFiles() throws {
        let old = try JSONDecoder().decode(NetworkModel.self, from: Data(#"{"name": "x", "latency": 1e-5, "bandwidth": 1e9}"#.utf8))
        #expect(old == NetworkModel(name: "x", latency: 1e-5, bandwidth: 1e9))
        let round = try JSONDecoder().decode(NetworkModel.self, from: try JSONEncoder().encode(measured))
        #expect(round == measured)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(NetworkModel.self, from: Data(#"{"name": "x", "latency": 1e-5, "bandwidth": 1e9, "queueDelay": -1}"#.utf8))
        }
    }
}

struct StepModelTests {
    /// Two units: an early one (1 Mi floats, 4 MiB) and a late one (4 Mi floats, 16 MiB), each
    /// 1 GFLOP forward and 1 GFLOP backward per case, at 1 GFLOP/s; buckets of 10 MiB.
    func twoUnits(network: NetworkModel, batchNorm: [Int] = []) -> StepModel {
        let early = GradientUnit(name: "early", tensorElements: [1 << 20], forwardFLOPs: 1e9, backwardFLOPs: 1e9, batchNormChannels: batchNorm)
        let late = GradientUnit(name: "late", tensorElements: [4 << 20], forwardFLOPs: 1e9, backwardFLOPs: 1e9, batchNormChannels: batchNorm)
        return StepModel(units: [early, late], trainingFLOPS: 1e9, inferenceFLOPS: 2e9, adamSeconds: 0.25,
                         bucketBytes: 10 << 20, network: network)
    }

    @Test func bucketsFollowBackwardOrder() {
        let m = twoUnits(network: .infiniband)
        // Backward meets `late` first: 16 MiB ≥ 10 MiB closes bucket 0 halfway through backward;
        // the 4 MiB of `early` make the last bucket, ready when backward ends.
        #expect(m.buckets == [StepModel.Bucket(bytes: 16 << 20, readyFraction: 0.5), StepModel.Bucket(bytes: 4 << 20, readyFraction: 1)])
    }

    @Test func oneRankIsComputeAndAdamOnly() {
        let s = twoUnits(network: .tenGigabitEthernet, batchNorm: [64]).step(batch: 3, ranks: 1)
        #expect(s.gradientAllreduce == 0 && s.syncCollectives == 0 && s.exposedOverlapped == 0)
        #expect(s.forward == 6 && s.backward == 6)          // 3 cases × 2 GFLOP at 1 GFLOP/s
        #expect(s.overlapped == 12.25 && s.sequential == 12.25)
    }

    @Test func computeShrinksWithTheBusiestSharePerRankButNotBelowOneCase() {
        let m = twoUnits(network: .infiniband)
        #expect(m.step(batch: 20, ranks: 3).share == 7)     // ⌈20/3⌉
        #expect(m.step(batch: 20, ranks: 3).forward == 14)
        let wide = m.step(batch: 20, ranks: 32)
        #expect(wide.share == 1 && wide.idleRanks == 12 && wide.forward == 2)
    }

    @Test func overlapHidesAllButTheLastBucketUntilTheFirstOutlastsTheRestOfBackward() {
        // Batch 1: backward is 2 s at every R; bucket 0 is ready at 1 s and must finish by 2 s.
        // Its ring time is 2(R−1)/R · 16 MiB / β with α = 0, β = 20 MB/s: 0.839 s at R = 2,
        // 1.118 s at R = 3, so communication stops hiding at R = 3.
        let m = twoUnits(network: NetworkModel(name: "slow", latency: 0, bandwidth: 2e7))
        let two = m.step(batch: 1, ranks: 2)
        #expect(two.hidden)
        #expect(abs(two.exposedOverlapped - 4_194_304 / 2e7) < 1e-12)       // the last bucket only
        let three = m.step(batch: 1, ranks: 3)
        #expect(!three.hidden)
        // Bucket 0 ends at 1 + 4/3 · 16 777 216 / 2e7; bucket 1 follows: exposed = that + 4/3 · 4 194 304 / 2e7 − 2.
        let expected = 1 + 4.0 / 3 * 16_777_216 / 2e7 + 4.0 / 3 * 4_194_304 / 2e7 - 2
        #expect(abs(three.exposedOverlapped - expected) < 1e-12)
        #expect(m.communicationStopsHiding(batch: 1, maxRanks: 1024) == 3)
        // Without overlap the whole all-reduce is added.
        #expect(abs(three.sequential - (2 + 2 + three.syncCollectives + three.gradientAllreduce + 0.25)) < 1e-12)
        // No batch norms: the loss sums (40 B), the shares' gather (16 B) and the waits' gather
        // (8 B), ⌈log₂ 3⌉ = 2 rounds each.
        #expect(abs(three.syncCollectives - 2 * (40 + 16 + 8) / 2e7) < 1e-15)
    }

    @Test func fastNetworkHidesEverywhere() {
        let m = twoUnits(network: NetworkModel(name: "fast", latency: 0, bandwidth: 1e12))
        #expect(m.communicationStopsHiding(batch: 1, maxRanks: 64) == nil)
    }

    /// Backward meets `late` first: its round at 0 s finds the link idle; its bucket goes at 1 s
    /// (0.839 s at β = 20 MB/s). `early`'s round at 1 s meets it and waits the queue delay, 0.1 s;
    /// `early`'s compute ends at 2.1 s, when bucket 0 is done, so the last bucket goes at once.
    @Test func batchNormRoundsWaitBehindABucketOnTheLink() {
        let net = NetworkModel(name: "queued", latency: 0, bandwidth: 2e7, queueDelay: 0.1)
        let s = twoUnits(network: net, batchNorm: [64]).step(batch: 1, ranks: 2)
        #expect(abs(s.queueWait - 0.1) < 1e-12)
        #expect(abs(s.exposedOverlapped - 4_194_304 / 2e7) < 1e-12)
        #expect(abs(s.overlapped - (s.forward + s.backward + 0.1 + s.syncCollectives + s.syncWait + s.exposedOverlapped + s.adam)) < 1e-12)
        // Without overlap nothing is on the link during backward: no queueing.
        #expect(abs(s.sequential - (s.forward + s.backward + s.syncCollectives + s.syncWait + s.gradientAllreduce + s.adam)) < 1e-12)
        // No queue delay: the same step as the plain overlap formula.
        var idle = net
        idle.queueDelay = 0
        let plain = twoUnits(network: idle, batchNorm: [64]).step(batch: 1, ranks: 2)
        #expect(plain.queueWait == 0 && abs(plain.exposedOverlapped - 4_194_304 / 2e7) < 1e-12)
        // One rank has no buckets on any link.
        #expect(twoUnits(network: net, batchNorm: [64]).step(batch: 1, ranks: 1).queueWait == 0)
    }

    @Test func eachBatchNormMakesTwoSmallAllreduces() {
        let net = NetworkModel(name: "test", latency: 1e-5, bandwidth: 1e9)
        let m = twoUnits(network: net, batchNorm: [64])
        // Two units × one batch norm × (forward, backward) + loss sums + shares' gather + waits' gather.
        let sizes = m.smallCollectives(batch: 4, ranks: 2)
        let expected: [Double] = [1032, 1024, 1032, 1024, 40, 24, 8]   // 8·(1 + 2·64), 16·64, …, 8·5, 8·(1 + ⌈4/2⌉), 8
        #expect(sizes == expected)
        let s = m.step(batch: 4, ranks: 2)
        #expect(abs(s.syncCollectives - (7 * 1e-5 + sizes.reduce(0, +) / 1e9)) < 1e-15)
    }

    @Test func batchNormsSharingARoundMakeOneMessageEachWay() {
        // A block with a shortcut: bn1 alone, then bn2 and the shortcut's batch norm together.
        let block = GradientUnit(name: "block", tensorElements: [100], forwardFLOPs: 1e9, backwardFLOPs: 2e9,
                                 batchNormRounds: [[64], [64, 64]])
        let m = StepModel(units: [block], trainingFLOPS: 1e9, inferenceFLOPS: 1e9, adamSeconds: 0, bucketBytes: 1 << 20,
                          network: NetworkModel(name: "test", latency: 1e-5, bandwidth: 1e9))
        #expect(m.batchNormRoundsPerStep == 4)
        // Round 2: 2 × 8·(1 + 2·64) = 2064 B forward, 2 × 16·64 = 2048 B backward.
        #expect(m.smallCollectives(batch: 2, ranks: 2) == [1032, 1024, 2064, 2048, 40, 16, 8])
    }
}

/// The node's contention and the wait for the slowest rank (Docs/scaling.md).
struct NodeTermsTests {
    @Test func expectedMaximumOfNormalsMatchesClosedForms() {
        // e₁ = 0, e₂ = 1/√π, e₃ = 3/(2√π); e₄ = 1.0293754 and e₅ = 1.1629645 (tabulated).
        #expect(SyncWait.expectedMaximum(ofNormals: 1) == 0)
        #expect(abs(SyncWait.expectedMaximum(ofNormals: 2) - 1 / Double.pi.squareRoot()) < 1e-9)
        #expect(abs(SyncWait.expectedMaximum(ofNormals: 3) - 3 / (2 * Double.pi.squareRoot())) < 1e-9)
        #expect(abs(SyncWait.expectedMaximum(ofNormals: 4) - 1.0293754) < 1e-7)
        #expect(abs(SyncWait.expectedMaximum(ofNormals: 5) - 1.1629645) < 1e-7)
        #expect(abs(SyncWait.expectedMaximum(ofNormals: 16) - 1.7659914) < 1e-7)
        #expect(abs(SyncWait.seconds(compute: 4, relativeSpread: 0.1, ranks: 2) - 0.4 / Double.pi.squareRoot()) < 1e-9)
    }

    @Test func contentionIsLinearInBusyCoresBetweenAloneAndAllCopies() {
        // The 16-core node: 8 copies × 2 threads ran 1.47× slower than one alone.
        let node = NodeContention(copies: 8, threadsPerCopy: 2, slowdown: 1.47)
        #expect(node.slowdown(busyCores: 1) == 1 && node.slowdown(busyCores: 2) == 1)
        #expect(abs(node.slowdown(busyCores: 4) - (1 + 0.47 * 2 / 14)) < 1e-15)    // 1.0671
        #expect(abs(node.slowdown(busyCores: 8) - (1 + 0.47 * 6 / 14)) < 1e-15)    // 1.2014
        #expect(abs(node.slowdown(busyCores: 16) - 1.47) < 1e-15)
        #expect(abs(node.slowdown(busyCores: 64) - 1.47) < 1e-15)                 // not extrapolated
        #expect(NodeContention(copies: 2, threadsPerCopy: 1, slowdown: 0.97).slowdown(busyCores: 2) == 1)
        #expect(NodeContention.none.slowdown(busyCores: 128) == 1)
    }

    /// One unit, 1 GFLOP forward and 2 GFLOP backward per case at 1 GFLOP/s, Adam 0.3 s, a
    /// free network; a node where 4 one-thread copies ran 2× slower than one.
    func nodeModel(ranksPerNode: Int, driftCV: Double = 0) -> StepModel {
        let u = GradientUnit(name: "u", tensorElements: [1000], forwardFLOPs: 1e9, backwardFLOPs: 2e9, batchNormChannels: [])
        return StepModel(units: [u], trainingFLOPS: 1e9, inferenceFLOPS: 2e9, adamSeconds: 0.3, bucketBytes: 1 << 20,
                         network: NetworkModel(name: "free", latency: 0, bandwidth: 1e300),
                         contention: NodeContention(copies: 4, threadsPerCopy: 1, slowdown: 2), threadsPerRank: 1,
                         ranksPerNode: ranksPerNode, driftCV: driftCV)
    }

    @Test func ranksOnOneNodeComputeSlowerAndAdamToo() {
        let m = nodeModel(ranksPerNode: 4)
        #expect(m.step(batch: 4, ranks: 1).slowdown == 1)
        let two = m.step(batch: 4, ranks: 2)                // 2 busy cores: 1 + 1 · 1/3
        #expect(abs(two.slowdown - 4.0 / 3) < 1e-15)
        #expect(abs(two.forward - 2 * 4.0 / 3) < 1e-12 && abs(two.backward - 4 * 4.0 / 3) < 1e-12)
        #expect(abs(two.adam - 0.4) < 1e-12)
        #expect(m.step(batch: 8, ranks: 8).slowdown == 2)   // 4 per node at most: 4 busy cores
        // One rank per node: no contention at any R.
        #expect(nodeModel(ranksPerNode: 1).step(batch: 8, ranks: 8).slowdown == 1)
    }

    @Test func theSlowestOfRRanksSetsTheStep() {
        let m = nodeModel(ranksPerNode: 1, driftCV: 0.1)
        #expect(m.step(batch: 4, ranks: 1).syncWait == 0)
        // R = 4: 1 case each, compute 3 s; wait e₄ · 0.1 · 3.
        let four = m.step(batch: 4, ranks: 4)
        #expect(abs(four.syncWait - 1.0293754 * 0.3) < 1e-7)
        #expect(abs(four.overlapped - (3 + four.syncWait + four.syncCollectives + four.exposedOverlapped + 0.3)) < 1e-12)
    }

    @Test func calibrationFromMeasuredStepsRoundTrips() throws {
        let m = nodeModel(ranksPerNode: 2)
        // 1 rank, 3 cases: 9 s of compute + 0.3 s of Adam at 1 GFLOP/s; 4.8 s means 2 GFLOP/s.
        #expect(try #require(m.trainingFLOPS(oneRankStep: 9.3, batch: 3)) == 1e9)
        #expect(try #require(m.trainingFLOPS(oneRankStep: 4.8, batch: 3)) == 2e9)
        #expect(m.trainingFLOPS(oneRankStep: 0.3, batch: 3) == nil)
        // A 2-rank step 0.5 s longer than the model without drift: cv = 0.5 / (e₂ · compute).
        let plain = m.step(batch: 2, ranks: 2)
        let cv = m.driftCV(twoRankStep: plain.overlapped + 0.5, batch: 2)
        #expect(abs(cv - 0.5 / (1 / Double.pi.squareRoot() * (plain.forward + plain.backward))) < 1e-9)
        var drifting = m
        drifting.driftCV = cv
        #expect(abs(drifting.step(batch: 2, ranks: 2).overlapped - (plain.overlapped + 0.5)) < 1e-12)
        #expect(m.driftCV(twoRankStep: plain.overlapped - 0.1, batch: 2) == 0)   // faster than the model: no drift
    }
}

struct RunPlanTests {
    @Test func thePapersCohortHas88StepsPerEpoch() {
        // 2186 scans, 5 folds: 437 validation, 1749 training, ⌈1749 / 20⌉ = 88 steps.
        let shape = RunShape(cases: 2186, folds: 5, epochs: 20, batch: 20)
        #expect(shape.validationCases == 437 && shape.trainingCases == 1749 && shape.stepsPerEpoch == 88)
    }

    @Test func validationSharedByTheRanksTakesTheBusiestSlice() {
        let unit = GradientUnit(name: "u", tensorElements: [1000], forwardFLOPs: 1e9, backwardFLOPs: 2e9, batchNormChannels: [])
        let m = StepModel(units: [unit], trainingFLOPS: 1e9, inferenceFLOPS: 2e9, adamSeconds: 0, bucketBytes: 1 << 20,
                          network: NetworkModel(name: "free", latency: 0, bandwidth: 1e15),
                          contention: NodeContention(copies: 2, threadsPerCopy: 1, slowdown: 1.5), ranksPerNode: 2)
        // 5 cases at 0.5 s each: rank 0 alone 2.5 s; on 4 ranks the busiest slice is ⌈5/4⌉ = 2
        // cases, 2 ranks per node busy (×1.5): 1.5 s.
        #expect(m.validation(cases: 5, ranks: 4, placement: .rank0) == 2.5)
        #expect(m.validation(cases: 5, ranks: 4, placement: .shared) == 1.5)
        #expect(m.validation(cases: 5, ranks: 1, placement: .shared) == 2.5)
        let shape = RunShape(cases: 10, folds: 2, epochs: 3, batch: 4)   // 5 validation cases
        #expect(m.estimate(shape, ranks: 4).validationSeconds == 1.5)
        #expect(m.estimate(shape, ranks: 4, validation: .rank0).validationSeconds == 2.5)
    }

    @Test func validationRunsOnRankZeroAloneAndCrossValidationMultiplies() {
        let unit = GradientUnit(name: "u", tensorElements: [1000], forwardFLOPs: 1e9, backwardFLOPs: 2e9, batchNormChannels: [])
        let m = StepModel(units: [unit], trainingFLOPS: 1e9, inferenceFLOPS: 2e9, adamSeconds: 0, bucketBytes: 1 << 20,
                          network: NetworkModel(name: "free", latency: 0, bandwidth: 1e15))
        let shape = RunShape(cases: 10, folds: 2, epochs: 3, batch: 4)   // 5 training cases: 2 steps; 5 validation
        let one = m.estimate(shape, ranks: 1, validation: .rank0), four = m.estimate(shape, ranks: 4, validation: .rank0)
        #expect(one.validationSeconds == 2.5 && four.validationSeconds == 2.5)   // 5 × 1 GFLOP at 2 GFLOP/s
        #expect(one.epochOverlapped == 2 * 12 + 2.5)                              // 2 steps × 4 cases × 3 s
        #expect(abs(four.epochOverlapped - (2 * 3 + 2.5)) < 1e-9)                 // communication ~1e-12 s
        #expect(one.crossValidationOverlapped == 2 * 2 * 3 * one.epochOverlapped)
        #expect(one.speedup == 1)
        #expect(abs(four.speedup - 26.5 / 8.5) < 1e-9)                            // not 4: validation is serial
    }

    @Test func profileScalesComputeLinearlyAndAdamNotAboveMeasured() throws {
        let p = MachineProfile(machine: "m", date: "d", threads: 2, sgemmGFLOPS: 100, efficiency: 0.5, adamSecondsPerMillionParameters: 0.002)
        #expect(p.flops(threads: 2) == 50e9 && p.flops(threads: 8) == 200e9)
        #expect(p.adamSeconds(parameters: 1_000_000, threads: 8) == 0.002)
        #expect(p.adamSeconds(parameters: 1_000_000, threads: 1) == 0.004)
        let round = try JSONDecoder().decode(MachineProfile.self, from: JSONEncoder().encode(p))
        #expect(round == p)
        // A profile written before the contention probe existed still reads, with none.
        let old = #"{"machine":"m","date":"d","threads":2,"sgemmGFLOPS":100,"efficiency":0.5,"adamSecondsPerMillionParameters":0.002}"#
        #expect(try JSONDecoder().decode(MachineProfile.self, from: Data(old.utf8)).contention == nil)
        var measured = p
        measured.contention = NodeContention(copies: 8, threadsPerCopy: 2, slowdown: 1.47, spread: 0.05)
        #expect(try JSONDecoder().decode(MachineProfile.self, from: JSONEncoder().encode(measured)) == measured)
    }
}

import Foundation
import Testing
import NumericalTesting
@testable import Tensor

/// `Machine`: what the benchmarks and the planner say about this machine.
@Suite struct MachineTests {
    @Test func loadAverageIsTheFirstFieldOfProcLoadavg() {
        #expect(Machine.loadAverage(procLoadavg: "0.52 0.58 0.59 1/189 4242\n") == 0.52)
        #expect(Machine.loadAverage(procLoadavg: "3.00 1.00 0.50 2/300 17") == 3)
        #expect(Machine.loadAverage(procLoadavg: "") == -1)
        #expect(Machine.loadAverage(procLoadavg: "busy 1 2") == -1)
        // This machine has /proc/loadavg (Linux).
        #expect(Machine.loadAverage() >= 0)
    }

    @Test func modelNameIsTheFirstOfProcCpuinfo() {
        let cpuinfo = """
        processor\t: 0
        vendor_id\t: AuthenticAMD
        model name\t: AMD EPYC 7B13   
        processor\t: 1
        model name\t: AMD EPYC 7B13
        """
        #expect(Machine.modelName(cpuinfo: cpuinfo) == "AMD EPYC 7B13")
        #expect(Machine.modelName(cpuinfo: "processor\t: 0\n") == "unknown CPU")
        #expect(Machine.description.hasSuffix(", \(ProcessInfoCores.online) cores"))
        #expect(!Machine.description.hasPrefix("unknown CPU"))
    }

    @Test func sgemmRateIsAPositiveRate() {
        ThreadSettings.with(blas: 1) {
            let rate = Machine.sgemmRate(size: 96)
            #expect(rate.isFinite && rate > 0)
        }
    }
}

/// `OrderedResults`: results put from many threads in any order come out in index order.
@Suite struct OrderedResultsTests {
    struct Failed: Error, Equatable { var index: Int }

    @Test func resultsAreTakenInIndexOrderWhateverOrderTheyArrive() {
        let results = OrderedResults<Int>()
        let n = 64
        DispatchQueue.global().async {
            DispatchQueue.concurrentPerform(iterations: n) { k in
                let i = n - 1 - k     // latest first, and in parallel
                results.put(i, i % 5 == 3 ? .failure(Failed(index: i)) : .success(i * i))
            }
        }
        for i in 0..<n {
            switch results.take(i) {
            case .success(let v): #expect(i % 5 != 3 && v == i * i)
            case .failure(let e): #expect(i % 5 == 3 && (e as? Failed) == Failed(index: i))
            }
        }
    }

    @Test func takeWaitsForAResultPutLater() {
        let results = OrderedResults<String>()
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) { results.put(0, .success("late")) }
        #expect((try? results.take(0).get()) == "late")
    }
}

import Testing
@testable import NN

/// The switches between implementations: a task's choice wins over the tuned one, which wins over
/// the process-wide one; a choice stays in its task.
@Suite struct ImplementationSwitchTests {
    @Test func aTasksChoiceWinsAndStaysInItsTask() async {
        // A variable no environment sets: the default is the process-wide choice.
        let s = ImplementationSwitch<ConvAlgorithm>(environment: "DSAN_TEST_SWITCH_NEVER_SET", default: .winograd2)
        #expect(s.variable == "DSAN_TEST_SWITCH_NEVER_SET" && s.selected == .winograd2)
        s.with(.direct) {
            #expect(s.selected == .direct)
            s.with(.winograd) { #expect(s.selected == .winograd) }
            #expect(s.selected == .direct)
        }
        #expect(s.selected == .winograd2)
        // A detached task inherits no task-local value: it sees the process-wide choice.
        let elsewhere = await s.with(.direct) { Task.detached { s.selected } }.value
        #expect(elsewhere == .winograd2)
        s.processWide = .winograd
        #expect(s.selected == .winograd)
        s.with(.direct) { #expect(s.selected == .direct) }
    }

    @Test func theTunedChoiceSitsBetweenTheTasksAndTheProcessWideOne() {
        #expect(DirectGEMM.choice.variable == "DSAN_DIRECT_GEMM")
        let processWide = DirectGEMM.choice.processWide
        let other: DirectGEMM = processWide == .packed ? .openBLAS : .packed
        ConvTuning.with(.packedDirectForward, other == .packed ? 1 : 0) {
            #expect(DirectGEMM.selected == other)
            DirectGEMM.choice.with(processWide) { #expect(DirectGEMM.selected == processWide) }
        }
        #expect(DirectGEMM.selected == processWide)
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// A choice between implementations of one computation that comparisons and tests switch
/// (`ConvAlgorithm.choice`, `WinogradGEMM.choice`, `DirectGEMM.choice`): the process-wide choice,
/// from an environment variable read once (a command may set it before its work), and a choice
/// for one task and the synchronous code it calls (`with(_:_:)`), which wins. Tests that run side
/// by side in one process use the task's choice, so that one test's choice never reaches a conv of
/// another. The convs read `selected` on the calling thread, before they hand work to
/// `Parallel`'s workers.
public final class ImplementationSwitch<Choice>: @unchecked Sendable
where Choice: RawRepresentable & CaseIterable & Sendable, Choice.RawValue == String {
    /// The environment variable that sets the process-wide choice.
    public let variable: String
    /// The task's choice. A `TaskLocal` is a key by its identity: this one lives as long as the
    /// switch, and every switch is a static constant.
    private let scoped = TaskLocal<Choice?>(wrappedValue: nil)
    /// A choice between the task's and the process-wide one (`DirectGEMM`'s `ConvTuning` setting).
    private let tuned: @Sendable () -> Choice?

    /// The choice of every task that has none of its own: `variable`'s value, or the default when it
    /// is unset or empty, until a command sets it (once, before its work; not while convs run).
    public var processWide: Choice

    public init(environment variable: String, default fallback: Choice, tuned: @escaping @Sendable () -> Choice? = { nil }) {
        self.variable = variable
        self.tuned = tuned
        processWide = environmentChoice(variable, default: fallback)
    }

    /// The task's choice when it has one, else the tuned one, else the process-wide one.
    public var selected: Choice { scoped.get() ?? tuned() ?? processWide }

    /// `selected` with another tuned choice in the middle (a second `ConvTuning` setting for one
    /// use of the same implementations: `DirectGEMM.selectedForBackward`).
    public func selected(tuned override: Choice?) -> Choice { scoped.get() ?? override ?? processWide }

    /// Runs `body` with `choice` for this task and the synchronous code it calls.
    public func with<R>(_ choice: Choice, _ body: () throws -> R) rethrows -> R {
        try scoped.withValue(choice, operation: body)
    }
}

/// Environment variable `name` as one of `T`'s cases (case-insensitive), `fallback` when it is
/// unset or empty. An unknown value is a configuration error that stops the program with a message
/// naming the variable and the accepted values.
func environmentChoice<T: RawRepresentable & CaseIterable>(_ name: String, default fallback: T) -> T
where T.RawValue == String {
    guard let raw = getenv(name), raw.pointee != 0 else { return fallback }
    let value = String(cString: raw)
    guard let choice = T(rawValue: value.lowercased()) else {
        // fatalError, not preconditionFailure: only its message survives release builds.
        fatalError("\(name)=\(value): expected one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    return choice
}

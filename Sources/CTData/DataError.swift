/// A problem with input data that a user must fix: names the file, the case where there is one,
/// what is wrong and what to do.
public struct DataError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var caseID: String?
    public var message: String

    public init(file: String, caseID: String? = nil, _ message: String) {
        self.file = file
        self.caseID = caseID
        self.message = message
    }

    public var description: String {
        if let caseID { return "\(file): case \(caseID): \(message)" }
        return "\(file): \(message)"
    }
}

// Fixed-width cells for the benchmarks' text tables.

extension String {
    /// The string followed by spaces (or, with `alignRight`, preceded by them) up to `width`
    /// characters; a string as long or longer is returned whole, never cut.
    func padded(to width: Int, alignRight: Bool = false) -> String {
        guard count < width else { return self }
        let fill = String(repeating: " ", count: width - count)
        return alignRight ? fill + self : self + fill
    }
}

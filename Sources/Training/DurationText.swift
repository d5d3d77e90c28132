import Foundation

/// How dsan writes a duration for people (progress lines, ETAs, epoch times): `42.5s` under a
/// minute (`42s` with `fractionDigits: 0`, as the trainer's log has it), `3m05s` under an hour,
/// `2h07m` above, `?` when unknown (not finite).
public enum DurationText {
    public static func short(_ seconds: Double, fractionDigits: Int = 1) -> String {
        let s = seconds
        if !s.isFinite { return "?" }
        if s < 60 { return String(format: "%.\(fractionDigits)fs", s) }
        if s < 3600 { return String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60) }
        return String(format: "%dh%02dm", Int(s) / 3600, (Int(s) % 3600) / 60)
    }
}

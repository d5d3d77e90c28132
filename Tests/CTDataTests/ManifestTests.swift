import Testing
@testable import CTData

@Suite struct ManifestTests {
    let header = "case_id,patient_id,label,image,lung,infection\n"

    @Test func parsesQuotingRelativePathsAndEmptyInfection() throws {
        let text = "\u{FEFF}" + header
            + "c1,p1,covid,img/c1.nii.gz,lung/c1.nii.gz,inf/c1.nii.gz\r\n"
            + "\n"
            + "\"c,2\",p2,CAP,\"/abs/c 2.nii\",lung/c2.nii,\n"
        let entries = try Manifest.parse(text, path: "/data/cohort/manifest.csv")
        #expect(entries.count == 2)
        #expect(entries[0] == ManifestEntry(line: 2, caseID: "c1", patientID: "p1", label: .covid,
                                            image: "/data/cohort/img/c1.nii.gz", lung: "/data/cohort/lung/c1.nii.gz",
                                            infection: "/data/cohort/inf/c1.nii.gz"))
        #expect(entries[1].caseID == "c,2" && entries[1].label == .cap && entries[1].image == "/abs/c 2.nii")
        #expect(entries[1].infection == nil && entries[1].line == 4)
    }

    @Test func columnsInAnyOrderWithExtras() throws {
        let text = "label,note,image,lung,infection,patient_id,case_id\ncovid,x,a.nii,b.nii,c.nii,p,k\n"
        let e = try Manifest.parse(text, path: "m.csv")
        #expect(e[0].caseID == "k" && e[0].patientID == "p" && e[0].image == "a.nii")
    }

    func message(_ text: String) -> String {
        do { _ = try Manifest.parse(text, path: "/d/m.csv"); return "no error" } catch { return "\(error)" }
    }

    @Test func badLinesNameFileLineAndFix() {
        #expect(message("") == "/d/m.csv: is empty; expected a header line `case_id,patient_id,label,image,lung,infection`")
        #expect(message("case_id,patient_id,label,image,lung\n") == "/d/m.csv: line 1: header lacks column `infection`; expected `case_id,patient_id,label,image,lung,infection`")
        #expect(message(header + "c1,p1,covid,a,b\n") == "/d/m.csv: line 2: expected 6 fields like the header, found 5")
        #expect(message(header + "c1,p1,flu,a,b,c\n") == "/d/m.csv: line 2: case c1: unknown label `flu`; use `covid` or `cap`")
        #expect(message(header + "c1,p1,covid,a,b,c\nc1,p2,cap,a,b,\n") == "/d/m.csv: line 3: duplicate case id c1, first on line 2")
        #expect(message(header + "c1,p1,covid,a,,c\n") == "/d/m.csv: line 2: case c1: empty lung path; a lung mask is required")
        #expect(message(header + "\"c1,p1,covid,a,b,c\n") == "/d/m.csv: line 2: unterminated quoted field")
        #expect(message(header) == "/d/m.csv: lists no cases after the header")
    }
}

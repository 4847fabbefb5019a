#!/usr/bin/env python3
"""make-messages.py - writes hl7q's own HL7 v2 test messages under
tests/data/hl7v2/ (and the malformed set under hl7v2/malformed/), one
message per file, segments ended by CR.

Every patient, clinician, facility and value here is invented for hl7q's
tests; none comes from a real record or from another project's fixtures.
The output is deterministic (no clock, no randomness): running it again
rewrites the same bytes, and the files are committed so a clone needs
nothing but this repository.  See tests/data/README.md for what each
group of files is for.

    python3 tests/data/make-messages.py     # from the repository root
"""

import hashlib
import base64
import os

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "hl7v2")
BAD = os.path.join(OUT, "malformed")

# Invented patients: (MRN, family, given, middle, DOB, sex, street, city).
# MRNs are 8 characters so the privacy tests can look for them; the
# assigning authority is a 3-letter code (too short to count as a secret).
PATIENTS = [
    ("HQ400101", "QUILLFEATHER", "ODALYS", "M", "19640312", "F", "12 Larkspur Row", "Brenmoor"),
    ("HQ400102", "VANTERPOOL", "ISIDORE", "J", "19581130", "M", "4 Kestrel Lane", "Ashcombe"),
    ("HQ400103", "MARCHBANKS", "THEODORA", "", "19910707", "F", "88 Pellow Street", "Dunhallow"),
    ("HQ400104", "OKONKWO-LEIRD", "EMEKA", "C", "20020119", "M", "301 Gantry Road", "Brenmoor"),
    ("HQ400105", "FAIRWEATHER", "LUCINDA", "R", "19470825", "F", "7 Old Mill Court", "Westerby"),
    ("HQ400106", "STRAVINSKAYA", "MIROSLAVA", "", "19830204", "F", "19 Tannery Walk", "Ashcombe"),
    ("HQ400107", "PENHALIGON", "CASPIAN", "T", "20150930", "M", "55 Heron Close", "Dunhallow"),
    ("HQ400108", "ABERNETHY", "ROSALIND", "K", "19720611", "F", "2 Chapel Yard", "Westerby"),
    ("HQ400109", "DELACROIX-PYM", "AUGUSTIN", "", "19390102", "M", "140 Quarry Hill", "Brenmoor"),
    ("HQ400110", "WINTERBOTTOM", "PERPETUA", "A", "19990418", "F", "6 Ferrier Street", "Ashcombe"),
    ("HQ400111", "HOLLOWAYNE", "BARNABY", "E", "19661223", "M", "23 Sextant Way", "Dunhallow"),
    ("HQ400112", "CARRAGHER", "NIAMH", "", "19880815", "F", "9 Bellfounder Row", "Westerby"),
    ("HQ400113", "TREMAYNE", "OSWIN", "L", "19540729", "M", "61 Windlass Road", "Brenmoor"),
    ("HQ400114", "GALLOWGLASS", "ESMERALDA", "V", "20080301", "F", "3 Cooper's Green", "Ashcombe"),
    ("HQ400115", "NIGHTINGALE-OBI", "FELIX", "", "19770512", "M", "17 Lantern Court", "Dunhallow"),
    ("HQ400116", "SOUTHWOLD", "ARABELLA", "G", "19930927", "F", "48 Drover's Lane", "Westerby"),
    ("HQ400117", "KILBRIDE", "HORATIO", "N", "19451014", "M", "5 Saddler Street", "Brenmoor"),
    ("HQ400118", "MONTGOMERIE", "CLEMENTINE", "", "20110606", "F", "90 Weaver's Walk", "Ashcombe"),
    ("HQ400119", "BALLANTYNE", "EZEKIEL", "P", "19681108", "M", "12 Ropewalk", "Dunhallow"),
    ("HQ400120", "ROSENQVIST", "SIGRUN", "H", "19860221", "F", "33 Cinder Path", "Westerby"),
    ("HQ400121", "FOTHERINGAY", "LEOPOLD", "", "19600917", "M", "71 Glebe Terrace", "Brenmoor"),
    ("HQ400122", "AMBERLEY", "OPHELIA", "S", "19970113", "F", "8 Hayward Mews", "Ashcombe"),
    ("HQ400123", "DRUMMOND-RHYS", "TOBIAS", "W", "19511230", "M", "26 Stile Lane", "Dunhallow"),
    ("HQ400124", "LINDQVARN", "ASTRID", "", "20040808", "F", "14 Cordwainer Row", "Westerby"),
    ("HQ400125", "PEVERELL", "IGNATIUS", "B", "19730320", "M", "2 Ostler Yard", "Brenmoor"),
    ("HQ400126", "HARGREAVES", "MARIGOLD", "F", "19820714", "F", "59 Chandler Street", "Ashcombe"),
    ("HQ400127", "CORMORANT", "SEBASTIAN", "", "19900502", "M", "10 Wherry Quay", "Dunhallow"),
    ("HQ400128", "VILLANUEVA-ROSS", "CATALINA", "I", "19571019", "F", "37 Fletcher Close", "Westerby"),
    ("HQ400129", "BLACKTHORNE", "CORNELIUS", "D", "19490603", "M", "66 Tinker's Lane", "Brenmoor"),
    ("HQ400130", "ELLSWORTH", "GENEVIEVE", "", "20130125", "F", "4 Farrier Court", "Ashcombe"),
    ("HQ400131", "MACALISTAIR", "RUAIRI", "O", "19751111", "M", "21 Wheelwright Way", "Dunhallow"),
    ("HQ400132", "THISTLEWOOD", "BEATRIX", "U", "19870930", "F", "15 Thatcher Row", "Westerby"),
    ("HQ400133", "ZABRISKIE", "LAZARUS", "", "19621205", "M", "99 Lamplighter Road", "Brenmoor"),
    ("HQ400134", "ORMEROD", "WILHELMINA", "Y", "20000228", "F", "27 Glazier Street", "Ashcombe"),
    ("HQ400135", "PRIESTLEY-NG", "AMBROSE", "Q", "19560416", "M", "3 Cartwright Lane", "Dunhallow"),
    ("HQ400136", "GRANVILLE", "SERAPHINA", "", "19940819", "F", "81 Mason's Yard", "Westerby"),
    ("HQ400137", "WETHERALL", "PERCIVAL", "Z", "19430724", "M", "44 Tanner's Hill", "Brenmoor"),
    ("HQ400138", "ASHBOURNE", "DELPHINE", "X", "20060410", "F", "18 Potter's Close", "Ashcombe"),
    ("HQ400139", "KINGSTOKE", "MALACHY", "", "19800101", "M", "7 Smithy Row", "Dunhallow"),
    ("HQ400140", "LOVELACE-DUBE", "PRIMROSE", "M", "19690606", "F", "62 Cooper Street", "Westerby"),
]


def pid(i, setid="1", extra_ids="", version="2.5.1"):
    """A PID segment for invented patient i."""
    mrn, fam, giv, mid, dob, sex, street, city = PATIENTS[i]
    ids = "%s^^^NFH^MR" % mrn + extra_ids
    phone = "^PRN^PH^^^555^%07d" % (3000000 + i * 7919 % 999999) if version >= "2.5" \
        else "(555)%03d-%04d" % (300 + i, 1000 + i * 37)
    return ("PID|%s||%s||%s^%s^%s^^^^L||%s|%s|||%s^^%s^NS^99%03d^USA^H||%s|||S"
            % (setid, ids, fam, giv, mid, dob, sex, street, city, i, phone))


def escaped(seg, pairs):
    """seg with each (plain, escaped) pair replaced; each must be there."""
    for plain, esc in pairs:
        assert plain in seg, plain
        seg = seg.replace(plain, esc)
    return seg


def msh(sapp, sfac, rapp, rfac, ts, typ, ctrl, ver, rest="", proc="P", enc="|^~\\&"):
    """An MSH segment; rest is MSH-13 onwards, starting with the separator."""
    fs = enc[0]
    return fs.join(["MSH" + enc, sapp, sfac, rapp, rfac, ts, "", typ, ctrl, proc, ver]) + rest


def write(path, segments, raw=None):
    data = raw if raw is not None else ("\r".join(segments) + "\r").encode("utf-8")
    with open(path, "wb") as f:
        f.write(data)


MESSAGES = {}  # name -> list of segments (or bytes)


def add(name, *segs):
    assert name not in MESSAGES, name
    MESSAGES[name] = list(segs)


# ---- ADT ---------------------------------------------------------------
add("adt-a01-admit-v251",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260301081500", "ADT^A01^ADT_A01", "NFH-A01-0001", "2.5.1"),
    "EVN|A01|20260301081500|||OPR0042^KESTEVEN^MARGUERITE",
    pid(0),
    "NK1|1|QUILLFEATHER^BASTIEN|SPO^Spouse^HL70063|12 Larkspur Row^^Brenmoor^NS^99000|^PRN^PH^^^555^3004411",
    "PV1|1|I|WARD7^0712^B^NFH||||D10231^ORMSKIRK^TABITHA^^^DR|||MED||||7|||D10231^ORMSKIRK^TABITHA^^^DR|IN||SELF|||||||||||||||||||NFH||||||20260301081500",
    "PV2|||^Chest pain, observation",
    "AL1|1|DA|^PENICILLIN^L|SV|Hives",
    "DG1|1||R07.9^Chest pain, unspecified^I10||20260301|A",
    "IN1|1|PLAN17^Regional Mutual Gold|INS9^REGIONAL MUTUAL|PO Box 77^^Brenmoor^NS^99010")
add("adt-a02-transfer-v25",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260301140000", "ADT^A02^ADT_A02", "NFH-A02-0001", "2.5"),
    "EVN|A02|20260301140000",
    pid(0, version="2.5"),
    "PV1|1|I|CCU^0204^A^NFH||||D10231^ORMSKIRK^TABITHA^^^DR|||CAR||||7|||D10231^ORMSKIRK^TABITHA^^^DR|IN|||||||||||||||||||||NFH||||||20260301081500",
    "PV2|||^Transfer to coronary care")
add("adt-a03-discharge-v24",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260304103000", "ADT^A03", "NFH-A03-0001", "2.4"),
    "EVN|A03|20260304103000",
    pid(1, version="2.4"),
    "PV1|1|I|WARD2^0201^A^NFH||||D20877^HALLORAN^PIERS^^^DR|||SUR||||1|||D20877^HALLORAN^PIERS^^^DR|IN||SELF||||||||||||||||01|HOME||NFH||||||20260228090000|20260304103000",
    "DG1|1|I10|K35.80^Acute appendicitis^I10||20260228|F")
add("adt-a04-register-v23",
    msh("FRONTDESK", "ASHCLINIC", "HL7Q", "NFH", "20260305091200", "ADT^A04", "ASH000451", "2.3"),
    "EVN|A04|20260305091200",
    pid(2, version="2.3"),
    "PV1|1|O|OPD^^^ASHCLINIC||||D30112^LOCKWOOD^ANSELM^^^DR|||GEN||||1|||D30112^LOCKWOOD^ANSELM^^^DR|OP|||||||||||||||||||||ASHCLINIC")
add("adt-a04-register-v231-zsegment",
    msh("FRONTDESK", "ASHCLINIC", "HL7Q", "NFH", "20260305091845", "ADT^A04", "ASH000452", "2.3.1"),
    "EVN|A04|20260305091845",
    pid(3, version="2.3"),
    "PV1|1|O|OPD^^^ASHCLINIC||||D30112^LOCKWOOD^ANSELM^^^DR|||GEN||||1|||||OP",
    "ZPI|1|PREFERRED-LANG^ig|INTERPRETER^Y",
    "ZVS|1|KIOSK-04|CHECKIN^20260305091500")
add("adt-a08-update-v26",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260306120000", "ADT^A08^ADT_A01", "NFH-A08-0001", "2.6"),
    "EVN|A08|20260306120000",
    pid(4, version="2.6"),
    "PV1|1|I|WARD5^0503^A^NFH||||D40550^ESTERHAZY^COSIMA^^^DR|||GER||||1|||||IN")
add("adt-a08-empty-msh11",  # MSH-11 empty: required by the standard, accepted (see deploy/doc/hl7.md)
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260306121500", "ADT^A08^ADT_A01", "NFH-A08-0002", "2.5.1", proc=""),
    "EVN|A08|20260306121500",
    pid(5),
    "PV1|1|I|WARD5^0504^B^NFH")
add("adt-a08-trailing-empty-fields",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260306123000", "ADT^A08^ADT_A01", "NFH-A08-0003", "2.5.1", rest="|||||||"),
    "EVN|A08|20260306123000||||||",
    pid(6) + "||||||||",
    "PV1|1|I|WARD5^0505^A^NFH|||||||||||||||||||||")
add("adt-a11-cancel-admit-v251",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260307074500", "ADT^A11^ADT_A09", "NFH-A11-0001", "2.5.1"),
    "EVN|A11|20260307074500",
    pid(7),
    "PV1|1|I|WARD3^0301^A^NFH||||D10231^ORMSKIRK^TABITHA^^^DR")
add("adt-a28-add-person-repetitions-v25",
    msh("MPI", "REGION", "HL7Q", "NFH", "20260308100000", "ADT^A28^ADT_A05", "MPI-0000088", "2.5"),
    "EVN|A28|20260308100000",
    escaped(pid(8, extra_ids="~9990001234^^^NHSX^NH~DLX88213^^^NSDMV^DL", version="2.5"),
            [("^PRN^PH^", "^PRN^PH^^^555^3110001~^NET^Internet^a.delacroix-pym@example.invalid~^ORN^CP^")]),
    "PD1|||Brenmoor Family Practice^^BFP01|G55012^VERELST^IMOGEN^^^DR",
    "NK1|1|DELACROIX-PYM^SOLANGE|DAU^Daughter^HL70063||^PRN^PH^^^555^3112222~^WPN^PH^^^555^3119999",
    "PV1|1|N")
add("adt-a31-update-person-v25",
    msh("MPI", "REGION", "HL7Q", "NFH", "20260308101500", "ADT^A31^ADT_A05", "MPI-0000089", "2.5"),
    "EVN|A31|20260308101500",
    pid(9, version="2.5"),
    "PV1|1|N")
add("adt-a40-merge-v251",
    msh("MPI", "REGION", "HL7Q", "NFH", "20260308103000", "ADT^A40^ADT_A39", "MPI-0000090", "2.5.1"),
    "EVN|A40|20260308103000",
    pid(10),
    "MRG|HQ499910^^^NFH^MR||ACC77120^^^NFH^AN")
add("adt-a05-preadmit-v27",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260309080000-0500", "ADT^A05^ADT_A05", "NFH-A05-0001", "2.7"),
    "EVN||20260309080000-0500",
    pid(11, version="2.7"),
    "PV1|1|P|SURG^^^NFH||||D20877^HALLORAN^PIERS^^^DR")
add("adt-a01-v28-sft",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260309083000+0100", "ADT^A01^ADT_A01", "NFH-A01-0028", "2.8",
        rest="|||AL|NE|GBR|UNICODE UTF-8"),
    "SFT|Invented Systems Ltd^L^ISL|4.2.1|AdmitCore|b2026.03",
    "EVN||20260309083000+0100",
    pid(12, version="2.8"),
    "PV1|1|E|ED^BAY3^^NFH||||D50991^QUENNELL^HARRIET^^^DR|||EME")
add("adt-a01-v22",
    msh("OLDPAS", "WESTERBY", "HL7Q", "NFH", "199806150930", "ADT^A01", "W98061501", "2.2"),
    "EVN|A01|199806150930",
    pid(13, version="2.2"),
    "PV1|1|I|W4^12^1")
add("adt-a01-v21-msh9-no-trigger-components",
    msh("OLDPAS", "WESTERBY", "HL7Q", "NFH", "199702010800", "ADT", "W97020101", "2.1"),
    "EVN|A01|199702010800",
    pid(14, version="2.1"),
    "PV1|1|I|W4^13^2")
add("adt-a04-type-4-components-v251",
    msh("FRONTDESK", "ASHCLINIC", "HL7Q", "NFH", "20260310111100", "ADT^A04^ADT_A01^EXTRA", "ASH000460", "2.5.1"),
    "EVN|A04|20260310111100",
    pid(15),
    "PV1|1|O|OPD^^^ASHCLINIC")
add("adt-a08-version-with-components-v251",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260310113000", "ADT^A08^ADT_A01", "NFH-A08-0010", "2.5.1^USA^2.5.1"),
    "EVN|A08|20260310113000",
    pid(16),
    "PV1|1|I|WARD5^0507^A^NFH")

# ---- acknowledgement modes (MSH-15 accept / MSH-16 application) ---------
add("adt-a08-enhanced-al-al",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260311090000", "ADT^A08^ADT_A01", "NFH-ENH-0001", "2.5.1", rest="|||AL|AL"),
    "EVN|A08|20260311090000", pid(17), "PV1|1|I|WARD6^0601^A^NFH")
add("adt-a08-enhanced-al-ne",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260311090500", "ADT^A08^ADT_A01", "NFH-ENH-0002", "2.5.1", rest="|||AL|NE"),
    "EVN|A08|20260311090500", pid(18), "PV1|1|I|WARD6^0602^A^NFH")
add("adt-a08-enhanced-su-er",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260311091000", "ADT^A08^ADT_A01", "NFH-ENH-0003", "2.5.1", rest="|||SU|ER"),
    "EVN|A08|20260311091000", pid(19), "PV1|1|I|WARD6^0603^A^NFH")
add("adt-a08-enhanced-ne-al-no-accept-ack",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260311091500", "ADT^A08^ADT_A01", "NFH-ENH-0004", "2.5.1", rest="|||NE|AL"),
    "EVN|A08|20260311091500", pid(20), "PV1|1|I|WARD6^0604^A^NFH")
add("adt-a08-enhanced-er-ne-no-accept-ack",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260311092000", "ADT^A08^ADT_A01", "NFH-ENH-0005", "2.5.1", rest="|||ER|NE"),
    "EVN|A08|20260311092000", pid(21), "PV1|1|I|WARD6^0605^A^NFH")
add("adt-a08-original-empty-msh15-msh16",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260311092500", "ADT^A08^ADT_A01", "NFH-ENH-0006", "2.5.1", rest="||||"),
    "EVN|A08|20260311092500", pid(22), "PV1|1|I|WARD6^0606^A^NFH")

# ---- delimiters, escapes, character sets --------------------------------
add("adt-a08-escapes",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260312100000", "ADT^A08^ADT_A01", "NFH-ESC-0001", "2.5.1"),
    "EVN|A08|20260312100000",
    escaped(pid(22), [("DRUMMOND-RHYS^TOBIAS", "DRUMMOND\\T\\RHYS^TOBIAS"),
                      ("26 Stile Lane", "Flat 2\\F\\3 \\S\\ Stile Lane \\E\\ Yard")]),
    "NTE|1||Prefers \\H\\morning\\N\\ visits\\.br\\Line two \\R\\ repeated\\X0D0A\\hex",
    "PV1|1|I|WARD1^0101^A^NFH")
add("adt-a01-alt-delimiters-hash-field-separator",
    "MSH#^~\\&#ALTPAS#NFH#HL7Q#NFH#20260312101500##ADT^A01^ADT_A01#NFH-ALT-0001#P#2.5.1",
    "EVN#A01#20260312101500",
    "PID#1##HQ400125^^^NFH^MR##PEVERELL^IGNATIUS^B##19730320#M###2 Ostler Yard^^Brenmoor^NS^99024^USA",
    "PV1#1#I#WARD4^0402^A^NFH")
add("adt-a01-alt-encoding-chars",
    "MSH|$%\\!|ALTPAS|NFH|HL7Q|NFH|20260312102000||ADT$A01$ADT_A01|NFH-ALT-0002|P|2.5.1",
    "EVN|A01|20260312102000",
    "PID|1||HQ400126$$$NFH$MR%HQ900126$$$NFH$PI||HARGREAVES$MARIGOLD$F||19820714|F",
    "PV1|1|I|WARD4$0403$B$NFH")
add("adt-a01-three-encoding-chars",
    "MSH|^~\\|ALTPAS|NFH|HL7Q|NFH|20260312102500||ADT^A01|NFH-ALT-0003|P|2.3",
    "EVN|A01|20260312102500",
    "PID|1||HQ400127^^^NFH^MR||CORMORANT^SEBASTIAN||19900502|M",
    "PV1|1|I|WARD4^0404^A^NFH")
add("oru-r01-v27-truncation-char",
    "MSH|^~\\&#|LABCORE|NFHLAB|HL7Q|NFH|20260312103000||ORU^R01^ORU_R01|LAB-TRUNC-0001|P|2.7|||AL|NE",
    pid(28, version="2.7"),
    "OBR|1|ORD88001|LAB88001|2951-2^Sodium^LN|||20260312090000",
    "OBX|1|NM|2951-2^Sodium^LN||139|mmol/L^mmol/L^UCUM|135-145|N|||F",
    "OBX|2|ST|8251-1^Service comment^LN||Specimen slightly haemolysed, repeat advised if clinically ind#||||||F")
add("adt-a01-utf8-msh18",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260312110000", "ADT^A01^ADT_A01", "NFH-UTF8-0001", "2.5.1",
        rest="||||||UNICODE UTF-8"),
    "EVN|A01|20260312110000",
    "PID|1||HQ400129^^^NFH^MR||BLÅTHÖRN-ÉCHEVERRÍA^CORNÉLIUS^D||19490603|M|||66 Tinker’s Lane^^Brønmoor^NS^99029",
    "NK1|1|ŁUKASZEWSKA-高橋^ZOË|SIS^Sister^HL70063",
    "NTE|1||Patient prefers Ελληνικά or 日本語 interpreters ✓ 🩺",
    "PV1|1|I|WARD8^0801^A^NFH")
add("adt-a28-utf8-msh18-v26",
    msh("MPI", "REGION", "HL7Q", "NFH", "20260312111500", "ADT^A28^ADT_A05", "MPI-UTF8-0002", "2.6",
        rest="|||AL|NE||UNICODE UTF-8"),
    "EVN|A28|20260312111500",
    "PID|1||HQ400130^^^NFH^MR||ELLSWORTH-NÚÑEZ^GENEVIÈVE||20130125|F|||4 Farrier Court^^Åshcombe^NS^99030",
    "PV1|1|N")

# ---- results ------------------------------------------------------------
add("oru-r01-nm-panel-v251",
    msh("LABCORE", "NFHLAB", "HL7Q", "NFH", "20260313080000", "ORU^R01^ORU_R01", "LAB-0000001", "2.5.1"),
    pid(24), "PV1|1|I|WARD2^0203^A^NFH",
    "ORC|RE|ORD90001|LAB90001",
    "OBR|1|ORD90001|LAB90001|24323-8^Comprehensive metabolic panel^LN|||20260313061500|||||||||D10231^ORMSKIRK^TABITHA||||||20260313075500|||F",
    "OBX|1|NM|2345-7^Glucose^LN||5.4|mmol/L^mmol/L^UCUM|3.9-5.5|N|||F|||20260313061500",
    "OBX|2|NM|2160-0^Creatinine^LN||112|umol/L^umol/L^UCUM|60-110|H|||F|||20260313061500",
    "OBX|3|NM|2823-3^Potassium^LN||4.1|mmol/L^mmol/L^UCUM|3.5-5.1|N|||F|||20260313061500",
    "OBX|4|SN|33914-3^eGFR^LN||>^60|mL/min/1.73m2^mL/min/1.73m2^UCUM|>60|N|||F",
    "OBX|5|NR|2093-3^Cholesterol reference^LN||3.5^5.2|mmol/L|||||F",
    "NTE|1|L|Fasting sample per requisition.")
add("oru-r01-text-types-v251",
    msh("LABCORE", "NFHLAB", "HL7Q", "NFH", "20260313090000", "ORU^R01^ORU_R01", "LAB-0000002", "2.5.1"),
    pid(25),
    "OBR|1|ORD90002|LAB90002|11529-5^Surgical pathology study^LN|||20260312160000|||||||||D20877^HALLORAN^PIERS||||||20260313085500|||F",
    "OBX|1|ST|22634-0^Path report.gross^LN||Received in formalin, one tan-pink appendix, 6.2 cm.||||||F",
    "OBX|2|TX|22635-7^Path report.microscopic^LN||Transmural neutrophilic infiltrate.~Serosal fibrinous exudate present.~No dysplasia.||||||F",
    "OBX|3|FT|22637-3^Path report.final diagnosis^LN||\\H\\DIAGNOSIS\\N\\\\.br\\Appendix: acute suppurative appendicitis\\.br\\\\.sp2\\Margins \\T\\ serosa: see above \\F\\ comment||||||F",
    "OBX|4|CWE|59847-4^Histology^LN||70460003^Acute appendicitis^SCT^K35^Acute appendicitis^I10||||||F",
    "OBX|5|DT|33882-2^Collection date^LN||20260312||||||F",
    "OBX|6|TS|68963-8^Date and time of report^LN||20260313085500-0500||||||F",
    "NTE|1|L|Reported by: ATTWELL, R. (consultant histopathologist)",
    "NTE|2|L|Copy to: HALLORAN, P.")
add("oru-r01-ce-v231",
    msh("MICRO", "NFHLAB", "HL7Q", "NFH", "20260313100000", "ORU^R01", "MIC0000301", "2.3.1"),
    pid(26, version="2.3"),
    "OBR|1|ORD90003|MIC90003|600-7^Blood culture^LN|||20260311220000|||||||20260311221500|BLDV&Blood venous&HL70070|D50991^QUENNELL^HARRIET||||||20260313095000|||P",
    "OBX|1|CE|600-7^Bacteria identified^LN|1|3092008^Staphylococcus aureus^SNM||||||P",
    "OBX|2|CE|18964-5^Oxacillin susceptibility^LN|1|S^Susceptible^HL70078||||||P",
    "OBX|3|SN|18964-5^Oxacillin MIC^LN|1|<=^0.25|ug/mL|||||P",
    "NTE|1||Gram positive cocci in clusters seen at 14 h.")
add("oru-r01-ed-attachment-large",
    # a PDF-like base64 attachment: makes the message larger than 16 KiB
    msh("DOCS", "NFHRAD", "HL7Q", "NFH", "20260313110000", "ORU^R01^ORU_R01", "RAD-0000007", "2.5.1"),
    pid(27),
    "OBR|1|ORD90004|RAD90004|36643-5^XR Chest 2 Views^LN|||20260313093000|||||||||D10231^ORMSKIRK^TABITHA||||||20260313105500|||F",
    "OBX|1|ED|18748-4^Diagnostic imaging report^LN||NFHRAD^AP^PDF^Base64^" +
    base64.b64encode(b"%PDF-1.4 invented report for hl7q tests\n" +
                     b"".join(hashlib.sha256(b"hl7q-ed-%d" % k).digest() for k in range(520))).decode() +
    "||||||F")
add("oru-r01-many-obx-large-v24",
    msh("LABCORE", "NFHLAB", "HL7Q", "NFH", "20260313120000", "ORU^R01", "LAB-0000003", "2.4"),
    pid(29, version="2.4"),
    "OBR|1|ORD90005|LAB90005|PANEL-X^Research trial extended panel^L|||20260313070000||||||||||||||20260313115500|||F",
    *["OBX|%d|NM|TRIAL-%03d^Analyte %03d^L||%d.%d|mg/L|0.0-%d.0|%s|||F" %
      (k, k, k, (k * 37) % 50, k % 10, (k * 37) % 50 + 5, "N" if k % 7 else "H") for k in range(1, 321)])
add("oru-r01-enhanced-al-al-v25",
    msh("LABCORE", "NFHLAB", "HL7Q", "NFH", "20260313130000", "ORU^R01^ORU_R01", "LAB-0000004", "2.5", rest="|||AL|AL"),
    pid(30, version="2.5"),
    "OBR|1|ORD90006|LAB90006|718-7^Hemoglobin^LN|||20260313120000||||||||||||||20260313125500|||F",
    "OBX|1|NM|718-7^Hemoglobin^LN||131|g/L|120-160|N|||F")
add("oru-r01-v282",
    msh("LABCORE", "NFHLAB", "HL7Q", "NFH", "20260313140000", "ORU^R01^ORU_R01", "LAB-0000005", "2.8.2"),
    pid(31, version="2.8"),
    "OBR|1|ORD90007|LAB90007|1988-5^C reactive protein^LN|||20260313130000||||||||||||||20260313135500|||F",
    "OBX|1|NM|1988-5^C reactive protein^LN||42|mg/L^mg/L^UCUM|<5|H|||F",
    "PRT|1|AD||OP^Ordering provider^HL70912|D10231^ORMSKIRK^TABITHA")

# ---- orders, immunisation, scheduling, documents, others -------------------
add("orm-o01-order-v23",
    msh("ORDERCOMMS", "NFH", "HL7Q", "NFHLAB", "20260314080000", "ORM^O01", "OC00001981", "2.3"),
    pid(32, version="2.3"),
    "PV1|1|O|OPD^^^NFH",
    "ORC|NW|ORD91001||||||^^^20260314080000^^R||20260314080000|NURS11^FELLOWES^AGATHA|||||",
    "OBR|1|ORD91001||24331-1^Lipid panel^LN|||20260314075500||||N|||||D30112^LOCKWOOD^ANSELM",
    "DG1|1|I10|E78.5^Hyperlipidaemia^I10")
add("oml-o21-lab-order-v251",
    msh("ORDERCOMMS", "NFH", "HL7Q", "NFHLAB", "20260314081500", "OML^O21^OML_O21", "OC00001982", "2.5.1", rest="|||AL|NE"),
    pid(33),
    "PV1|1|I|WARD7^0714^A^NFH",
    "ORC|NW|ORD91002|||||||20260314081500|||D10231^ORMSKIRK^TABITHA",
    "TQ1|1||||||20260314081500||S",
    "OBR|1|ORD91002||58410-2^CBC panel^LN|||20260314081000",
    "SPM|1|SPC91002||119297000^Blood specimen^SCT|||||||||||||20260314081000")
add("vxu-v04-immunisation-v251",
    msh("IMMREG", "NFHPHARM", "HL7Q", "REGION", "20260314090000", "VXU^V04^VXU_V04", "IMM0000071", "2.5.1", rest="|||ER|AL|USA||||Z22^CDCPHINVS"),
    pid(34),
    "PD1|||||||||||02^Reminder/recall - any method^HL70215",
    "NK1|1|PRIESTLEY-NG^HONORIA|MTH^Mother^HL70063",
    "ORC|RE||IMM71^NFHPHARM",
    "RXA|0|1|20260314085000||208^COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose^CVX|0.3|mL^mL^UCUM||00^New immunization record^NIP001||||||LOT7781X|20270131|MOD^Invented Vaccines^MVX|||CP|A",
    "RXR|C28161^Intramuscular^NCIT|LD^Left Deltoid^HL70163",
    "OBX|1|CE|64994-7^Vaccine funding program eligibility^LN|1|V01^Not VFC eligible^HL70064||||||F|||20260314085000",
    "OBX|2|TS|29768-9^VIS publication date^LN|2|20250115||||||F")
add("vxu-v04-immunisation-v251-original",
    msh("IMMREG", "NFHPHARM", "HL7Q", "REGION", "20260314091000", "VXU^V04^VXU_V04", "IMM0000072", "2.5.1"),
    pid(35),
    "ORC|RE||IMM72^NFHPHARM",
    "RXA|0|1|20260314090500||141^Influenza, seasonal, injectable^CVX|0.5|mL^mL^UCUM||00^New immunization record^NIP001||||||LOT5520F|20260630|SKB^Invented Biologicals^MVX|||CP|A",
    "RXR|C28161^Intramuscular^NCIT|RD^Right Deltoid^HL70163")
add("siu-s12-new-appointment-v24",
    msh("SCHEDULER", "ASHCLINIC", "HL7Q", "NFH", "20260315100000", "SIU^S12", "SCH00044012", "2.4"),
    "SCH|APT44012|APT44012||||ROUTINE^Routine^HL70276|FOLLOWUP^Follow up|30|MIN|^^30^20260320093000^20260320100000|||||D30112^LOCKWOOD^ANSELM||||NURS11^FELLOWES^AGATHA|||||Booked",
    pid(36, version="2.4"),
    "PV1|1|O|OPD^^^ASHCLINIC",
    "RGS|1|A",
    "AIS|1|A|FOLLOWUP^Follow up|20260320093000|0|MIN|30|MIN",
    "AIP|1|A|D30112^LOCKWOOD^ANSELM|ATT")
add("mdm-t02-document-v25",
    msh("DOCS", "NFH", "HL7Q", "NFH", "20260315110000", "MDM^T02^MDM_T02", "DOC0000301", "2.5"),
    "EVN|T02|20260315110000",
    pid(37, version="2.5"),
    "PV1|1|O|OPD^^^NFH",
    "TXA|1|DS^Discharge summary|TX|20260315103000|D20877^HALLORAN^PIERS||20260315105500|||||DOC301||||||AU||AV",
    "OBX|1|TX|18842-5^Discharge summary^LN||Admitted with abdominal pain; appendicectomy on day 1.||||||F",
    "OBX|2|TX|18842-5^Discharge summary^LN||Recovered well; follow-up in clinic in two weeks.||||||F")
add("dft-p03-charge-v25",
    msh("BILLING", "NFH", "HL7Q", "NFH", "20260315120000", "DFT^P03^DFT_P03", "BIL0000501", "2.5"),
    "EVN|P03|20260315120000",
    pid(38, version="2.5"),
    "PV1|1|O|OPD^^^NFH",
    "FT1|1|||20260315113000||CG|99213^Office visit, established^CPT|||1|||||||||||D30112^LOCKWOOD^ANSELM")
add("rde-o11-pharmacy-v25",
    msh("PHARMACY", "NFHPHARM", "HL7Q", "NFH", "20260315130000", "RDE^O11^RDE_O11", "RX00007710", "2.5"),
    pid(39, version="2.5"),
    "ORC|NW|RX7710||||||||||D10231^ORMSKIRK^TABITHA",
    "RXE|^^^20260315140000^^R|00093-0311^Amoxicillin 500 mg capsule^NDC|500||mg|CAP|||||21",
    "RXR|PO^Oral^HL70162")
add("qry-a19-patient-query-v23",
    msh("CLINICWS", "ASHCLINIC", "HL7Q", "NFH", "20260315140000", "QRY^A19", "QRY0000019", "2.3"),
    "QRD|20260315140000|R|I|Q19-0001|||10^RD|HQ400104^OKONKWO-LEIRD^EMEKA|DEM|||",
    "PID|1||HQ400104^^^NFH^MR||OKONKWO-LEIRD^EMEKA^C||20020119|M")
add("ack-a01-inbound-v25",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260315150000", "ACK^A01^ACK", "NFH-ACK-0001", "2.5"),
    "MSA|AA|NFH-A01-0001",
    "PID|1||HQ400111^^^NFH^MR||HOLLOWAYNE^BARNABY^E||19661223|M")
add("mfn-m02-staff-v25",
    msh("STAFFDIR", "NFH", "HL7Q", "NFH", "20260315160000", "MFN^M02^MFN_M02", "MFN0000002", "2.5"),
    "MFI|PRA^Practitioner master file^HL70175||UPD|||AL",
    "MFE|MAD|MF00002|20260315160000|D60123^NETTLEFOLD^AURELIA^^^DR|CWE",
    "STF|D60123|D60123^^^NFH^EI|NETTLEFOLD^AURELIA^^^DR|||F",
    "PID|1||HQ400112^^^NFH^MR||CARRAGHER^NIAMH||19880815|F")

# ---- batches --------------------------------------------------------------
add("batch-fhs-bhs-two-oru-v251",
    "FHS|^~\\&|LABCORE|NFHLAB|HL7Q|NFH|20260316080000||NFHLAB-F0001.hl7|nightly results|FHS-0001",
    "BHS|^~\\&|LABCORE|NFHLAB|HL7Q|NFH|20260316080000||||BHS-0001",
    msh("LABCORE", "NFHLAB", "HL7Q", "NFH", "20260316080000", "ORU^R01^ORU_R01", "LAB-B0001", "2.5.1"),
    pid(1),
    "OBR|1|ORD92001|LAB92001|2345-7^Glucose^LN|||20260316060000",
    "OBX|1|NM|2345-7^Glucose^LN||6.1|mmol/L|3.9-5.5|H|||F",
    msh("LABCORE", "NFHLAB", "HL7Q", "NFH", "20260316080000", "ORU^R01^ORU_R01", "LAB-B0002", "2.5.1"),
    pid(2),
    "OBR|1|ORD92002|LAB92002|2345-7^Glucose^LN|||20260316061000",
    "OBX|1|NM|2345-7^Glucose^LN||4.8|mmol/L|3.9-5.5|N|||F",
    "BTS|2",
    "FTS|1")
add("batch-bhs-only-adt-v24",
    "BHS|^~\\&|ADMITCORE|NFH|HL7Q|NFH|20260316090000||||BHS-0002",
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260316090000", "ADT^A08", "NFH-B0001", "2.4"),
    "EVN|A08|20260316090000", pid(3, version="2.4"),
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260316090000", "ADT^A08", "NFH-B0002", "2.4"),
    "EVN|A08|20260316090000", pid(4, version="2.4"),
    msh("ADMITCORE", "NFH", "HL7Q", "NFH", "20260316090000", "ADT^A08", "NFH-B0003", "2.4"),
    "EVN|A08|20260316090000", pid(5, version="2.4"),
    "BTS|3")

# ---- generated variants: many distinct ordinary messages --------------------
# Updates and results for every invented patient, cycling through versions,
# so the delivery and audit tests have a few dozen ordinary messages.
VERSIONS = ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8"]
for k in range(20):
    i = (k * 7) % len(PATIENTS)
    ver = VERSIONS[k % len(VERSIONS)]
    typ = "ADT^A08" if ver < "2.4" else "ADT^A08^ADT_A01"
    add("var-adt-a08-%02d" % k,
        msh("ADMITCORE", "NFH", "HL7Q", "NFH", "202603170%d%02d00" % (8 + k // 60, k % 60), typ,
            "NFH-VAR-A08-%04d" % k, ver),
        "EVN|A08|202603170%d%02d00" % (8 + k // 60, k % 60),
        pid(i, version=ver),
        "PV1|1|I|WARD%d^%02d%02d^A^NFH" % (k % 9 + 1, k % 9 + 1, k + 1))
for k in range(16):
    i = (k * 11 + 3) % len(PATIENTS)
    ver = VERSIONS[(k + 4) % len(VERSIONS)]
    typ = "ORU^R01" if ver < "2.4" else "ORU^R01^ORU_R01"
    value = "%d.%d" % (3 + k % 5, (k * 3) % 10)
    add("var-oru-r01-%02d" % k,
        msh("LABCORE", "NFHLAB", "HL7Q", "NFH", "202603180%d%02d00" % (8 + k // 60, k % 60), typ,
            "LAB-VAR-R01-%04d" % k, ver),
        pid(i, version=ver),
        "OBR|1|ORD93%03d|LAB93%03d|2345-7^Glucose^LN|||202603180700" % (k, k),
        "OBX|1|NM|2345-7^Glucose^LN||%s|mmol/L|3.9-5.5|%s|||F" % (value, "N" if float(value) < 5.5 else "H"),
        "NTE|1|L|Variant result %d for the delivery tests." % k)


# ---- malformed: each refused by hl7q's parser, with a negative ACK ----------
# (what the parser refuses and why: hl7/msg.c; the ACK codes: deploy/doc/hl7.md)
MALFORMED = {}  # name -> bytes


def bad(name, head, body=None, before=b""):
    """A malformed message: `before` + the header `head` + `body` segments."""
    n = len(MALFORMED)
    if body is None:
        body = ["EVN|A01|20260319100000",
                "PID|1||HQ499%03d^^^NFH^MR||MALFORMIA^CASE%03d||19700101|U" % (n, n)]
    MALFORMED[name] = before + ("\r".join([head] + body) + "\r").encode("utf-8")


def bad_msh(ctrl, typ="ADT^A01^ADT_A01", ver="2.5.1", enc="|^~\\&"):
    return msh("BADSENDER", "NFH", "HL7Q", "NFH", "20260319100000", typ, ctrl, ver, enc=enc)


bad("junk-line-before-msh", bad_msh("BAD-0001"), before=b"BATCH EXPORT v3 -- do not edit\r")
bad("utf8-bom-before-msh", bad_msh("BAD-0002"), before=b"\xef\xbb\xbf")
bad("space-before-msh", bad_msh("BAD-0003"), before=b" ")
MALFORMED["missing-msh"] = (b"EVN|A01|20260319100000\r"
                            b"PID|1||HQ499901^^^NFH^MR||MALFORMIA^NOHEADER||19700101|U\r")
MALFORMED["json-document"] = b'{"resourceType":"Patient","id":"x1","name":[{"family":"MALFORMIA"}]}\r'
MALFORMED["xml-document"] = b'<?xml version="1.0"?>\r<ADT_A01><MSH><MSH.1>|</MSH.1></MSH></ADT_A01>\r'
MALFORMED["png-bytes"] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02"
for name, typ, ctrl, ver in [("empty-msh9", "", "BAD-0010", "2.5.1"),
                             ("blank-msh9-spaces", "   ", "BAD-0011", "2.5.1"),
                             ("empty-msh10", "ADT^A01^ADT_A01", "", "2.5.1"),
                             ("blank-msh10-spaces", "ADT^A01^ADT_A01", "  ", "2.5.1"),
                             ("empty-msh12", "ADT^A01^ADT_A01", "BAD-0014", ""),
                             ("version-3-0", "ADT^A01^ADT_A01", "BAD-0015", "3.0"),
                             ("version-1-0", "ADT^A01^ADT_A01", "BAD-0016", "1.0"),
                             ("version-not-a-number", "ADT^A01^ADT_A01", "BAD-0017", "two.five"),
                             ("version-without-dot", "ADT^A01^ADT_A01", "BAD-0018", "25")]:
    bad(name, bad_msh(ctrl, typ, ver))
for k, (name, enc) in enumerate([("msh2-ampersands", "|&&&&"), ("msh2-two-chars", "|^~"),
                                 ("msh2-six-chars", "|^~\\&#@"), ("msh2-letters", "|ABCD"),
                                 ("msh1-letter-field-separator", "X^~\\&"),
                                 ("msh1-space-field-separator", " ^~\\&"),
                                 ("msh2-nul-byte", "|^~\x00&")]):
    bad(name, bad_msh("BAD-%04d" % (20 + k), enc=enc))
bad("msh2-split-by-lf", bad_msh("BAD-0030").replace("MSH|^~\\&", "MSH|^~\n\\&", 1))
MALFORMED["msh-only"] = b"MSH\r"
MALFORMED["msh-truncated-after-msh3"] = (b"MSH|^~\\&|BADSENDER\r"
                                         b"PID|1||HQ499931^^^NFH^MR||MALFORMIA^TRUNCATED||19700101|U\r")
for k, (name, seg) in enumerate([
        ("segment-id-lowercase", "pid|1||HQ499940^^^NFH^MR"),
        ("segment-id-two-chars", "PI|1||HQ499941^^^NFH^MR"),
        ("segment-id-four-chars", "PIDX|1||HQ499942^^^NFH^MR"),
        ("segment-id-digit-first", "1ID|1||HQ499943^^^NFH^MR"),
        ("segment-id-punctuation", "P-D|1||HQ499944^^^NFH^MR"),
        ("segment-id-nul-byte", "\x00ID|1||HQ499945^^^NFH^MR"),
        ("segment-text-after-lf", "PID|1||HQ499946^^^NFH^MR||MALFORMIA^WRAPPED||19700101|U|||long\naddress line")]):
    bad(name, bad_msh("BAD-%04d" % (40 + k)), body=["EVN|A01|20260319100000", seg])
MALFORMED["batch-without-msh"] = (b"FHS|^~\\&|BADSENDER|NFH|HL7Q|NFH|20260319100000||||FHS-BAD1\r"
                                  b"BHS|^~\\&|BADSENDER|NFH|HL7Q|NFH|20260319100000||||BHS-BAD1\rBTS|0\rFTS|1\r")
MALFORMED["batch-first-msh-empty-msh10"] = (
    b"BHS|^~\\&|BADSENDER|NFH|HL7Q|NFH|20260319100000||||BHS-BAD2\r" +
    bad_msh("", "ADT^A08").encode() +
    b"\rPID|1||HQ499950^^^NFH^MR||MALFORMIA^BATCHED||19700101|U\rBTS|1\r")


def main():
    os.makedirs(BAD, exist_ok=True)
    for old in os.listdir(OUT):
        if old.endswith(".hl7"):
            os.remove(os.path.join(OUT, old))
    for old in os.listdir(BAD):
        if old.endswith(".hl7"):
            os.remove(os.path.join(BAD, old))
    for name, segs in MESSAGES.items():
        write(os.path.join(OUT, name + ".hl7"), segs)
    for name, data in MALFORMED.items():
        write(os.path.join(BAD, name + ".hl7"), None, raw=data)
    print("%d messages, %d malformed" % (len(MESSAGES), len(MALFORMED)))


if __name__ == "__main__":
    main()

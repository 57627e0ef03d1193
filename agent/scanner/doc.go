// Package scanner reads member cards and QR codes from serial barcode
// scanners (USB CDC-ACM or RS-232 in "serial emulation" mode) and hands each
// read to the agent as a Scan.
//
// It owns everything between the serial port and a member id:
//
//   - the port itself: Run opens it (raw, 8N1), reads it from one goroutine,
//     and closes and reopens it when it fails or vanishes (scanners get
//     unplugged, USB hubs brown out);
//   - framing: Framer cuts the byte stream at CR, LF, CRLF or TAB, the
//     suffixes scanners are commonly programmed with;
//   - AIM symbology identifiers: ParseAIM splits "]E0…", "]Q1…" and friends
//     off the payload;
//   - turning a scan into a member id (MemberID), using protocol's id rules.
//
// It is the only package in tillsync that imports go.bug.st/serial, so the
// library's quirks stay here: a read timeout returns (0, nil), which is idle
// time and never an error or data; io.ReadFull must never be used on a port;
// and unplugging is not signalled as such — it shows up as a read error
// (EIO on Linux), a zero-length read the library reports as "port closed", or
// the device node / COM port disappearing, which Run checks for while idle.
//
// Scanned data may be personal (member ids): it is logged at DEBUG only, and
// then only its symbology and length.
package scanner

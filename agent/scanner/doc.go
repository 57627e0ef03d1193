// Package scanner reads member cards and QR codes from serial barcode
// scanners (USB CDC-ACM or RS-232 in "serial emulation" mode) and hands each
// read to the agent as a Scan.
//
// It owns everything between the serial port and a member id:
//
//   - finding the port: by name (Options.Port), or by the scanner's USB
//     identity (Options.Match: VID, PID and optionally serial number).
//     ListPorts enumerates the serial ports with their USB details, and
//     LookupVendor names common scanner makers and USB-serial bridge chips
//     by vendor id. Chosen by identity, the port is looked up anew at every
//     (re)open, so the agent finds the scanner again after an unplug even
//     when the OS gives it another COM or tty name;
//   - the port itself: Run opens it (raw, 8N1), reads it from one goroutine,
//     and closes and reopens it when it fails or vanishes (scanners get
//     unplugged, USB hubs brown out), reporting its life through OnState and
//     a Status (port in use, connected, last error, reconnects, last scan)
//     through OnStatus;
//   - framing: Framer cuts the byte stream at CR, LF, CRLF or TAB, the
//     suffixes scanners are commonly programmed with;
//   - AIM symbology identifiers: ParseAIM splits "]E0…", "]Q1…" and friends
//     off the payload, and SymbologyName names them for people;
//   - GS1 element strings: ParseGS1 splits the data of GS1 symbols (]C1
//     GS1-128, ]e0 DataBar, ]d2 DataMatrix, ]Q3 QR Code, or data led by
//     FNC1 sent as GS) into application identifiers, using the predefined
//     lengths of the GS1 General Specifications, GS as the separator after
//     variable-length elements, and GS1 check digits on keys;
//   - turning a scan into a member id (MemberID), using protocol's id rules:
//     in a GS1 symbol the member id is AI 8018 (GSRN – recipient); otherwise
//     it is the whole scan, checked with the coalition's check digit scheme
//     (CheckDigit: none, Luhn, or mod 11 — where a check value of 10 is
//     never issued and always refused).
//
// Payment cards are refused, never handled: a scan that looks like a payment
// card number (LooksLikePaymentCard: 13–19 digits, Luhn-valid, a card
// scheme's prefix, also inside track data or URLs) gives an error with code
// payment_card that carries neither the number nor any masked form of it.
// Member numbers must therefore stay out of card ranges.
//
// It is the only package in tillsync that imports go.bug.st/serial, so the
// library's quirks stay here: a read timeout returns (0, nil), which is idle
// time and never an error or data; io.ReadFull must never be used on a port;
// and unplugging is not signalled as such — it shows up as a read error
// (EIO on Linux), a zero-length read the library reports as "port closed",
// the device node / COM port disappearing, or (when chosen by USB identity)
// the enumerator no longer listing the port with that identity, which Run
// checks for while idle. The library's enumerator needs cgo on macOS:
// builds without cgo there list ports by name only (USBDetails is false)
// and cannot choose a scanner by USB identity.
//
// Scanned data may be personal (member ids): it is logged at DEBUG only, and
// then only its symbology and length. Errors name symbology, length, byte
// offsets and GS1 application identifiers, never the data.
package scanner

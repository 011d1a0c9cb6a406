// snporacle: an independent SEV-SNP report verifier for sevsup's tests, built from Debian's
// go-sev-guest 0.15 (verify.SnpAttestation + validate.SnpAttestation) with caller-given roots.
// Usage: snporacle REPORT ARK.pem INTERMEDIATE.pem LEAF.pem [measurement-hex host-data-hex report-data-hex]
// Prints "OK" and exits 0, or prints the first error and exits 1.
package main

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/validate"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
)

func cert(path string) *x509.Certificate {
	data, err := os.ReadFile(path)
	if err != nil {
		fail(err)
	}
	if b, _ := pem.Decode(data); b != nil {
		data = b.Bytes
	}
	c, err := x509.ParseCertificate(data)
	if err != nil {
		fail(err)
	}
	return c
}

func fail(err error) {
	fmt.Println(err)
	os.Exit(1)
}

func main() {
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	ark, mid, leaf := cert(os.Args[2]), cert(os.Args[3]), cert(os.Args[4])
	report, err := abi.ReportToProto(raw)
	if err != nil {
		fail(err)
	}
	info, err := abi.ParseSignerInfo(report.GetSignerInfo())
	if err != nil {
		fail(err)
	}
	chain := &spb.CertificateChain{ArkCert: ark.Raw, AskCert: mid.Raw}
	pc := &trust.ProductCerts{Ark: ark, Ask: mid}
	if info.SigningKey == abi.VlekReportSigner {
		chain.VlekCert = leaf.Raw
		pc = &trust.ProductCerts{Ark: ark, Asvk: mid}
	} else {
		chain.VcekCert = leaf.Raw
	}
	line := os.Getenv("PRODUCT_LINE")
	roots := map[string][]*trust.AMDRootCerts{line: {{ProductLine: line, Product: line, ProductCerts: pc}}}
	att := &spb.Attestation{Report: report, CertificateChain: chain}
	opts := &verify.Options{TrustedRoots: roots, Now: time.Now(), DisableCertFetching: true}
	if err := verify.SnpAttestation(att, opts); err != nil {
		fail(err)
	}
	vo := &validate.Options{GuestPolicy: abi.SnpPolicy{SMT: true}, PermitProvisionalFirmware: true}
	if len(os.Args) > 7 {
		vo.Measurement, _ = hex.DecodeString(os.Args[5])
		vo.HostData, _ = hex.DecodeString(os.Args[6])
		vo.ReportData, _ = hex.DecodeString(os.Args[7])
	}
	if err := validate.SnpAttestation(att, vo); err != nil {
		fail(err)
	}
	fmt.Println("OK")
}

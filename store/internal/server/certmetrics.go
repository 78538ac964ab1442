package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ephemeral-store/ephemeral-store/store/internal/mtls"
)

// certificateCollector exports when the certificates in use expire. It
// reads them at every scrape from the same sources the TLS handshakes use,
// so a reloaded or re-minted certificate shows at the next scrape with no
// hook to forget.
type certificateCollector struct {
	m    *tlsMaterial
	desc *prometheus.Desc
}

func newCertificateCollector(m *tlsMaterial) *certificateCollector {
	return &certificateCollector{m: m, desc: prometheus.NewDesc(
		"ephemeral_store_certificate_expiry_timestamp_seconds",
		"NotAfter, in Unix seconds, of the certificates in use: kind=server the client port's serving certificate, "+
			"kind=peer the peer certificate (the serving one without --peer-cert), kind=ca the earliest of the CA "+
			"certificates trusted from the --client-ca and --peer-ca files.",
		[]string{"kind"}, nil)}
}

func (c *certificateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *certificateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range []struct {
		kind string
		src  mtls.CertSource
	}{{"server", c.m.serving}, {"peer", c.m.peerCert}} {
		if cert, err := s.src.GetCertificate(nil); err == nil && cert != nil && cert.Leaf != nil {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(cert.Leaf.NotAfter.Unix()), s.kind)
		}
	}
	if at, ok := earliestCA(c.m.clientCAs, c.m.peerCAs); ok {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(at), "ca")
	}
}

// earliestCA is the earliest NotAfter, in Unix seconds, of the CA
// certificates the sources' files hold. A CA kept only for the rotation
// grace period is left out: it is leaving on purpose.
func earliestCA(sources ...*mtls.PoolReloader) (int64, bool) {
	var at int64
	found := false
	for _, s := range sources {
		for _, c := range s.Certificates() {
			if t := c.NotAfter.Unix(); !found || t < at {
				at, found = t, true
			}
		}
	}
	return at, found
}

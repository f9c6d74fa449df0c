package ingest

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Sources says which addresses may send a provider's webhooks. A
// provider's allow-list is off when it has none; Shopify, Stripe and
// Webflow publish the ranges they send from, and a merchant who lists them
// turns away forgeries before any signature is computed.
type Sources struct {
	// Allow holds each provider's allowed ranges, by provider name.
	Allow map[string][]netip.Prefix
	// TrustedProxies are the load balancers in front of ingest. A request
	// from one of them is judged by the address it forwarded
	// (X-Forwarded-For, the nearest one it did not add itself); a request
	// from anywhere else by its own address, whatever it claims.
	TrustedProxies []netip.Prefix
}

// client is the address a request came from, as far as it can be trusted.
func (s Sources) client(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, false
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	addr = addr.Unmap()
	if !contains(s.TrustedProxies, addr) {
		return addr, true
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, false
		}
		if hop = hop.Unmap(); !contains(s.TrustedProxies, hop) {
			return hop, true
		}
	}
	return addr, true
}

func contains(ranges []netip.Prefix, a netip.Addr) bool {
	for _, p := range ranges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// allow answers 403 (errForbiddenSource) to a webhook from outside
// provider's allow-list, before anything else is done with it.
func (s Sources) allow(provider string, reject func(*http.Request, error, http.ResponseWriter), next http.Handler) http.Handler {
	ranges := s.Allow[provider]
	if len(ranges) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a, ok := s.client(r); !ok || !contains(ranges, a) {
			reject(r, errForbiddenSource, w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// prefixes is a setting of comma-separated CIDRs (a bare address is its
// own /32 or /128).
type prefixes struct{ p *[]netip.Prefix }

func (v prefixes) Set(s string) error {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return fmt.Errorf("%q is not an address or CIDR", f)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return fmt.Errorf("%q is not an address or CIDR", f)
		}
		// Client addresses are judged unmapped (::ffff:1.2.3.4 is 1.2.3.4),
		// so a range written in the mapped form is unmapped too.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	*v.p = out
	return nil
}

func (v prefixes) String() string {
	if v.p == nil {
		return ""
	}
	s := make([]string, len(*v.p))
	for i, p := range *v.p {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

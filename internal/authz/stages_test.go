package authz

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/smartlayer/smartlayer/internal/quota"
	"github.com/smartlayer/smartlayer/internal/scoring"
)

type subjects []string

func (s *subjects) Take(_ context.Context, k quota.Key, _ time.Time) (quota.Result, error) {
	*s = append(*s, k.Subject)
	return quota.Result{Decision: quota.Allowed}, nil
}

// Anonymous quota subjects group IPv6 as behaviour does: rotating
// addresses inside one /64 is one subject (issue 18).
func TestQuotaStageGroupsIPv6(t *testing.T) {
	var got subjects
	st := QuotaStage(&got, 0, 64)
	for _, a := range []string{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:3::1", "192.0.2.7", "::ffff:192.0.2.7"} {
		ip := netip.MustParseAddr(a)
		if _, err := st.Evaluate(context.Background(), &scoring.Request{ClientIP: ip, ClientKey: ip.String(), Path: "/a"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Evaluate(context.Background(), &scoring.Request{User: "42", ClientKey: "2001:db8::1", Path: "/a"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"ip:2001:db8:1:2::/64", "ip:2001:db8:1:2::/64", "ip:2001:db8:1:3::/64", "ip:192.0.2.7", "ip:192.0.2.7", "u:42"}
	if len(got) != len(want) {
		t.Fatalf("subjects %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("subject %d = %q, want %q", i, got[i], want[i])
		}
	}
}

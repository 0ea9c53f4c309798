package status_test

import (
	"testing"

	"github.com/berth-gpu/berth/policy"
	"github.com/berth-gpu/berth/status"
)

// TestPolicyStatusNamesApproversOnce: berth/policy names who may approve
// once, and counts the approvals needed, not the requirements: one
// approval from people two requirements share meets both.
func TestPolicyStatusNamesApproversOnce(t *testing.T) {
	lead := policy.Requirement{Kind: policy.NeedTeamLead, Subject: "vision/train", Owners: []string{"@ana"}}
	owner := policy.Requirement{Kind: policy.NeedTeamOwner, Subject: "team vision's workloads", Owners: []string{"@acme/vision", "@ana"}}
	admin := policy.Requirement{Kind: policy.NeedAdmin, Subject: "quotas", Owners: []string{"@acme/platform"}}
	nlp := policy.Requirement{Kind: policy.NeedTeamOwner, Subject: "team nlp's workloads", Owners: []string{"@ana"}}
	for _, tc := range []struct {
		reqs []policy.Requirement
		want string
	}{
		{[]policy.Requirement{lead, owner}, "needs 1 approval: team lead and team vision owner (@ana)"},
		{[]policy.Requirement{owner, lead}, "needs 1 approval: team vision owner and team lead (@ana)"},
		{[]policy.Requirement{admin, owner}, "needs 2 approvals: platform admin (@acme/platform); team vision owner (@acme/vision or @ana)"},
		{[]policy.Requirement{admin, lead, owner, nlp}, "needs 2 approvals: platform admin (@acme/platform); team lead, team vision owner and team nlp owner (@ana)"},
	} {
		got := status.PolicyStatus(policy.Review{Requirements: tc.reqs})
		if got.Description != tc.want {
			t.Errorf("got  %q\nwant %q", got.Description, tc.want)
		}
	}
}

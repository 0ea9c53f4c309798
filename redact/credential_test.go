package redact

import (
	"strings"
	"testing"
)

// TestCredential: pasted tokens of the known formats, private keys, URLs
// with a password and random-looking values are credentials; the values a
// training job's env usually holds (names, paths, model ids, commits,
// UUIDs, flags, numbers) are not. The kind never holds the value.
func TestCredential(t *testing.T) {
	for _, tt := range []struct {
		v    string
		kind string // "" when not a credential
	}{
		{"ghp_" + strings.Repeat("aB3", 12), "GitHub personal access token"},
		{"github_pat_11ABCDEFG0" + strings.Repeat("x9Y", 10), "GitHub fine-grained token"},
		{"gho_" + strings.Repeat("Qw7", 12), "GitHub OAuth token"},
		{"xoxb-1234567890-abcdefghij", "Slack token"},
		{"xoxp-1234567890-abcdefghij", "Slack token"},
		{"AKIAIOSFODNN7EXAMPLE", "AWS access key id"},
		{"sk-proj-" + strings.Repeat("Ab1", 8), "API secret key"},
		{"glpat-" + strings.Repeat("Zz9", 7), "GitLab personal access token"},
		{"hf_" + strings.Repeat("kL4", 11), "Hugging Face token"},
		{"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n", "PEM private key"},
		{"-----BEGIN RSA PRIVATE KEY-----", "PEM private key"},
		{"postgres://train:hunter2@db.internal:5432/runs", "URL with a password"},
		{"iK2ZWeqhFWCEPyYngFb5", "high entropy"},
		{"84yRnBUbHoWC8FJowoRoWD8s7bA16J7P", "high entropy"},
		{"6oam89oz6ww3r9ay6i79n1d4x9m605w0", "high entropy"},

		{"sk-learn", ""},
		{"ghp_short", ""},
		{"AKIA-not-a-key", ""},
		{"1", ""},
		{"true", ""},
		{"/data/imagenet/train", ""},
		{"meta-llama/Llama-3.1-8B-Instruct", ""},
		{"bert-base-uncased-finetuned-squad2", ""},
		{"MyModelCheckpointV2Final", ""},
		{"wandbProjectVisionExp42x", ""},
		{"ResNet50ImageNetBaseline1", ""},
		{"TRANSFORMERS_CACHE_V2_dir", ""},
		{"e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4", ""}, // a commit
		{"123e4567-e89b-12d3-a456-426614174000", ""},     // a UUID
		{"https://huggingface.co/datasets/squad", ""},
		{"--lr 3e-4 --epochs 10 --batch-size 256", ""},
		{"postgres://db.internal:5432/runs", ""},
	} {
		kind, ok := Credential(tt.v)
		if ok != (tt.kind != "") || !strings.Contains(kind, tt.kind) {
			t.Errorf("Credential(%q) = %q, %v; want %q", tt.v, kind, ok, tt.kind)
		}
		if ok && len(tt.v) > 12 && strings.Contains(kind, tt.v[len(tt.v)-8:]) {
			t.Errorf("Credential(%q) says the value: %q", tt.v, kind)
		}
	}
}

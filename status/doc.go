// Package status renders outcomes for people: the plan as text, commit
// status descriptions, and pull-request comments. It is pure: values in,
// text out, deterministic (sorted, no clock), so its output lives in golden
// files. Posting to GitHub is status/gh's job.
package status

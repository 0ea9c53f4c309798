// Package traffic is how people reach a service on one machine: berth's
// own health checks of each replica, a reverse proxy that sends requests
// only to ready replicas, and rolling updates that start a new replica,
// wait until it is ready, move traffic to it and only then stop an old
// one.
//
// What it owns:
//   - Probes (probe.go): one check of a replica (HTTP GET, TCP connection
//     or command) and the pure Tracker that turns results into healthy or
//     not (failure threshold, start-up grace).
//   - The Pool and its proxy (proxy.go): net/http/httputil.ReverseProxy
//     over the replicas that pass readiness, round robin. A request that
//     never reached a replica (the connection was refused: it just
//     crashed) is sent to another, so a crash costs no request that can be
//     retried safely. Removing a replica drains it: no new requests, and
//     the ones in flight finish first.
//   - The Service (service.go): keeps its replicas, runs their probes,
//     restarts a replica whose liveness fails or whose process exits, and
//     rolls out a new spec within its rollout's maxSurge and
//     maxUnavailable.
//   - The Router (router.go): the same pools and proxies for the local
//     backend, fed with its pods; Shift moves traffic during its rollouts.
//   - Recommend (autoscale.go): the replica count autoscale asks for from
//     the proxy's request rate, with a scale-down stabilisation window;
//     pure. Acting on it (admitting the replicas) is the scheduler's.
//
// What it does not own: starting and stopping processes (a Starter does:
// the local backend's pods, or a test's), ports (the local backend gives
// each replica its own) and deciding how many replicas may run (the
// scheduler).
package traffic

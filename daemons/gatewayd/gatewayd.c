/* SPDX-License-Identifier: MIT */
/*
 * gatewayd.c - eventfold-gatewayd: main, configuration, lifecycle and
 * signals of the gRPC front door (see eventfold-gatewayd(8)).
 *
 * Start: configuration from defaults, /etc/eventfold/eventfold.conf
 * section [gatewayd], EventfoldDB's environment variables and flags (in
 * that order, the last winning); grpc_init (no fork after it); the gRPC
 * listeners and call slots (server.c); /metrics (metrics.c); the health
 * poller (health.c); then READY=1 to systemd. The gateway holds no
 * durable state: --data-dir is accepted and unused.
 *
 * SIGTERM/SIGINT: health NOT_SERVING, stop taking calls, end the
 * streams cleanly (status OK), let unary calls in flight finish (up to
 * shutdown_grace_ms, then cancel them), exit 0.
 */
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <systemd/sd-daemon.h>

#include "conf.h"
#include "daemon.h"
#include "env.h"
#include "gatewayd.h"
#include "log.h"

#define OFF(f) offsetof(struct gw_conf, f)

static const struct conf_key gw_keys[] = {
	{ "data_dir", CONF_STR, OFF(data_dir), "/var/lib/eventfold",
	    "accepted for symmetry; the gateway keeps no durable state" },
	{ "runtime_dir", CONF_STR, OFF(runtime_dir), "/run/eventfold",
	    "directory of the IPC sockets (store.sock, store-events.sock, "
	    "runner.sock)" },
	{ "store_url", CONF_STR, OFF(store_url), "",
	    "nng URL of stored's request socket (default ipc://RUNTIME_DIR/"
	    "store.sock)" },
	{ "events_url", CONF_STR, OFF(events_url), "",
	    "nng URL of stored's publish socket (default ipc://RUNTIME_DIR/"
	    "store-events.sock)" },
	{ "runner_url", CONF_STR, OFF(runner_url), "",
	    "nng URL of runnerd's request socket, for eventfold.Runner "
	    "(default ipc://RUNTIME_DIR/runner.sock)" },
	{ "listen", CONF_STR, OFF(listen), "[::]:2113",
	    "gRPC addresses, comma-separated: HOST:PORT or unix:PATH "
	    "(env EVENTFOLD_LISTEN)" },
	{ "metrics_listen", CONF_STR, OFF(metrics_listen), "[::]:9090",
	    "HOST:PORT of the Prometheus /metrics listener, empty: off "
	    "(env EVENTFOLD_METRICS_LISTEN)" },
	{ "tls_cert", CONF_STR, OFF(tls_cert), "",
	    "PEM certificate chain: serve TLS (env EVENTFOLD_TLS_CERT)" },
	{ "tls_key", CONF_STR, OFF(tls_key), "",
	    "PEM private key of tls_cert (env EVENTFOLD_TLS_KEY)" },
	{ "tls_ca", CONF_STR, OFF(tls_ca), "",
	    "PEM CA bundle: require client certificates, mTLS "
	    "(env EVENTFOLD_TLS_CA)" },
	{ "jwt_secret", CONF_STR, OFF(jwt_secret), "",
	    "HS256 secret: require bearer JWTs on EventStore calls "
	    "(env EVENTFOLD_JWT_SECRET)" },
	{ "threads", CONF_U64, OFF(threads), "0",
	    "completion queues, one thread each (0: one per CPU)" },
	{ "slots", CONF_U64, OFF(slots), "64",
	    "concurrent calls per unary method and queue" },
	{ "max_request_bytes", CONF_SIZE, OFF(max_request_bytes), "4M",
	    "largest request message accepted" },
	{ "max_response_bytes", CONF_SIZE, OFF(max_response_bytes), "4M",
	    "largest read response; clients page (at least 128K)" },
	{ "store_timeout_ms", CONF_U64, OFF(store_timeout_ms), "5000",
	    "how long a call waits for stored before UNAVAILABLE" },
	{ "health_interval_ms", CONF_U64, OFF(health_interval_ms), "500",
	    "how often stored's health is checked" },
	{ "shutdown_grace_ms", CONF_U64, OFF(shutdown_grace_ms), "5000",
	    "on SIGTERM, how long calls may take to finish" },
	{ "live_ring_events", CONF_U64, OFF(live_ring_events), "32768",
	    "recent events kept for live subscribers; one that falls "
	    "further behind reads from the log (env "
	    "EVENTFOLD_BROKER_CAPACITY)" },
	{ NULL, 0, 0, NULL, NULL },
};

static const struct env_flag gw_env[] = {
	{ "EVENTFOLD_LISTEN", "--listen" },
	{ "EVENTFOLD_METRICS_LISTEN", "--metrics-listen" },
	{ "EVENTFOLD_TLS_CERT", "--tls-cert" },
	{ "EVENTFOLD_TLS_KEY", "--tls-key" },
	{ "EVENTFOLD_TLS_CA", "--tls-ca" },
	{ "EVENTFOLD_JWT_SECRET", "--jwt-secret" },
	{ "EVENTFOLD_BROKER_CAPACITY", "--live-ring-events" },
	{ NULL, NULL },
};

/* main's: every other file is handed the pointer it needs. */
static struct gw gateway;

/* The watchdog's test: the gRPC completion-queue loops turn. */
static int
gateway_alive(uint64_t limit_ms)
{
	return server_alive(&gateway, limit_ms);
}

/* live_ring_events in range; threads 0 is one per CPU
 * (daemon_def.check). */
static int
gateway_check(void *conf)
{
	struct gw_conf *c = conf;
	long ncpu;

	if (c->live_ring_events < 64 || c->live_ring_events > (16u << 20)) {
		fprintf(stderr,
		    "eventfold-gatewayd: live_ring_events %llu is "
		    "out of range (64 .. 16777216)\n",
		    (unsigned long long)c->live_ring_events);
		return 1;
	}
	if (c->threads == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		c->threads = ncpu > 0 ? (uint64_t)ncpu : 1;
	}
	return 0;
}

/* Then: at most 64 threads, at least a slot, a 128K response, at most
 * a 64M request, 0 for the store's timeout is 5 s. */
static const struct daemon_clamp gw_clamps[] = {
	{ "threads", 0, 0, 64 },
	{ "slots", 1, 0, 0 },
	{ "max_response_bytes", 0, 128u << 10, 0 },
	{ "max_request_bytes", 0, 0, 64u << 20 },
	{ "store_timeout_ms", 5000, 0, 0 },
	{ NULL, 0, 0, 0 },
};

/* Start: the peer URLs, gRPC, the metrics and health threads; fatal on
 * any failure. */
static void
gateway_open(struct gw *gw)
{
	char err[512];

	client_url(gw->store_url, sizeof(gw->store_url), gw->conf.runtime_dir,
	    STORE_SOCK, gw->conf.store_url);
	client_url(gw->events_url, sizeof(gw->events_url),
	    gw->conf.runtime_dir, STORE_EVENTS_SOCK, gw->conf.events_url);
	client_url(gw->runner_url, sizeof(gw->runner_url),
	    gw->conf.runtime_dir, RUNNER_SOCK, gw->conf.runner_url);
	if (*gw->conf.jwt_secret != '\0') {
		gw->jwt_secret = gw->conf.jwt_secret;
		gw->jwt_secret_len = strlen(gw->conf.jwt_secret);
	}

	grpc_init();
	if (server_start(gw, err, sizeof(err)) != 0)
		fatalx("%s", err);
	if (metrics_start(gw, err, sizeof(err)) != 0)
		fatalx("%s", err);
	if (health_start(gw) != 0)
		fatalx("cannot start the health thread");
	log_info("live ring of %llu events for subscribers",
	    (unsigned long long)gw->conf.live_ring_events);
	log_info("serving eventfold.EventStore for %s and eventfold.Runner "
	         "for %s (%llu threads%s)",
	    gw->store_url, gw->runner_url,
	    (unsigned long long)gw->conf.threads,
	    gw->jwt_secret ? ", JWT required" : "");
}

static const struct daemon_def gw_def = {
	.section = "gatewayd",
	.keys = gw_keys,
	.about =
	    "The gRPC front door of eventfold (eventfold.EventStore, "
	    "eventfold.Runner and\ngrpc.health.v1.Health).\n"
	    "Environment overrides (below flags): EVENTFOLD_LISTEN, "
	    "EVENTFOLD_METRICS_LISTEN,\n"
	    "EVENTFOLD_TLS_CERT, EVENTFOLD_TLS_KEY, EVENTFOLD_TLS_CA, "
	    "EVENTFOLD_JWT_SECRET,\nEVENTFOLD_BROKER_CAPACITY "
	    "(live_ring_events), EVENTFOLD_LOG_LEVEL or RUST_LOG\n(error, "
	    "warn, info, debug).\n\n",
	.env = gw_env,
	.check = gateway_check,
	.clamps = gw_clamps,
	.stopping = "stopping: NOT_SERVING, ending streams",
	.alive = gateway_alive,
	.hup_msg = "SIGHUP: the gateway has nothing to reload; restart it to "
	           "change its configuration",
};

int
main(int argc, char **argv)
{
	struct gw *gw = &gateway;
	struct conf_opts opts;
	sigset_t set;
	int rc;

	if ((rc = daemon_configure(&gw_def, &gw->conf, &argc, &argv, &opts)) >=
	    0)
		return rc;

	/* Signals are taken synchronously by the main thread only. */
	daemon_signals(&set);
	gateway_open(gw);
	daemon_serve(&gw_def, &set, "READY=1\nSTATUS=listening", NULL);

	health_shutdown(gw);
	server_stop(gw);
	health_stop(gw);
	metrics_stop(gw);
	grpc_shutdown();
	nngx_fini();
	conf_free(gw_keys, &gw->conf);
	free(argv); /* env_argv's */
	log_info("stopped");
	return 0;
}

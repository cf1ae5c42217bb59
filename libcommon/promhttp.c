/* SPDX-License-Identifier: MIT */
/* promhttp.c - see promhttp.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "hostport.h"
#include "promhttp.h"

static enum MHD_Result
promhttp_handler(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_len, void **state)
{
	const struct promhttp *p = cls;
	struct MHD_Response *r;
	enum MHD_Result ret;
	unsigned int code = MHD_HTTP_OK;
	size_t len;
	char *body;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		r = MHD_create_response_from_buffer(0, (void *)"",
		    MHD_RESPMEM_PERSISTENT);
		code = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (strcmp(url, "/metrics") != 0) {
		r = MHD_create_response_from_buffer(strlen(p->not_found),
		    (void *)p->not_found, MHD_RESPMEM_PERSISTENT);
		code = MHD_HTTP_NOT_FOUND;
	} else {
		body = p->render(p->arg, &len);
		r = MHD_create_response_from_buffer(len, body,
		    MHD_RESPMEM_MUST_FREE);
		MHD_add_response_header(r, "Content-Type",
		    "text/plain; version=0.0.4");
	}
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

int
promhttp_start(const struct promhttp *p, void **handle, char *err,
    size_t errlen)
{
	struct addrinfo hints, *ai = NULL;
	char host[256], port[32];
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD |
	    MHD_USE_ERROR_LOG;
	struct sockaddr_in6 *sin6;
	int rc;

	if (hostport_split(p->listen, host, sizeof(host), port,
	        sizeof(port)) != 0 ||
	    *port == '\0') {
		snprintf(err, errlen, "metrics_listen %s: expected HOST:PORT",
		    p->listen);
		return -EINVAL;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(*host ? host : NULL, port, &hints, &ai)) != 0) {
		snprintf(err, errlen, "metrics_listen %s: %s", p->listen,
		    gai_strerror(rc));
		return -EADDRNOTAVAIL;
	}
	if (ai->ai_family == AF_INET6) {
		flags |= MHD_USE_IPv6;
		sin6 = (struct sockaddr_in6 *)ai->ai_addr;
		if (p->dual_stack && IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr))
			flags |= MHD_USE_DUAL_STACK;
	}
	*handle = MHD_start_daemon(flags, (uint16_t)atoi(port), NULL, NULL,
	    promhttp_handler, (void *)p, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
	    MHD_OPTION_CONNECTION_LIMIT, p->conns,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_END);
	freeaddrinfo(ai);
	if (*handle == NULL) {
		snprintf(err, errlen,
		    "cannot listen on %s for /metrics (in use?)", p->listen);
		return -EADDRINUSE;
	}
	return 0;
}

void
promhttp_stop(void **handle)
{
	if (*handle != NULL)
		MHD_stop_daemon(*handle);
	*handle = NULL;
}

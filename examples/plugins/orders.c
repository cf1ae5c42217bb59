/* SPDX-License-Identifier: MIT */
/*
 * orders.c - a process manager between two aggregates: "order" (Place
 * {"address", "items"}, Cancel) and "shipment" (Create {"order_id",
 * "address"}, Hold {"reason"}, Release). The manager "order_shipping"
 * reacts to every OrderPlaced by sending Create to the shipment with
 * the order's id. A shipment on hold refuses Create, so the command is
 * retried, then parked as a dead letter, until someone sends Release
 * and retries it (eventfoldctl deadletters retry order_shipping).
 *
 * States, JSON: order {"placed", "cancelled", "address"}; shipment
 * {"created", "held", "reason"}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <eventfold/plugin.h>

static const struct efp_host *host;

static json_t *
parse_obj(const void *p, size_t len)
{
	json_t *v = NULL;

	if (p != NULL && len > 0)
		v = json_loadb(p, len, JSON_DECODE_ANY, NULL);
	if (v == NULL || !json_is_object(v)) {
		json_decref(v);
		v = json_object();
	}
	return v;
}

static int
set_json(struct efp_ctx *ctx, json_t *st)
{
	char *s = json_dumps(st, JSON_COMPACT);
	int rc;

	json_decref(st);
	if (s == NULL)
		return EFP_ENOMEM;
	rc = host->set_state(ctx, s, strlen(s));
	free(s);
	return rc;
}

static int
emit_json(struct efp_ctx *ctx, const char *type, json_t *payload)
{
	char *s = json_dumps(payload, JSON_COMPACT);
	int rc;

	json_decref(payload);
	if (s == NULL)
		return EFP_ENOMEM;
	rc = host->emit(ctx, type, s, strlen(s));
	free(s);
	return rc;
}

static int
order_apply(struct efp_ctx *ctx, const void *state, size_t len,
    const struct efp_event *ev)
{
	json_t *st = parse_obj(state, len), *p;

	if (!strcmp(ev->type, "OrderPlaced")) {
		p = parse_obj(ev->payload, ev->payload_len);
		json_object_set_new(st, "placed", json_true());
		json_object_set(st, "address",
		    json_object_get(p, "address") ?
		        json_object_get(p, "address") :
		        json_null());
		json_decref(p);
	} else if (!strcmp(ev->type, "OrderCancelled"))
		json_object_set_new(st, "cancelled", json_true());
	return set_json(ctx, st);
}

static int
order_handle(struct efp_ctx *ctx, const void *state, size_t len,
    const struct efp_command *cmd)
{
	json_t *st = parse_obj(state, len), *p;
	int placed = json_is_true(json_object_get(st, "placed"));
	int cancelled = json_is_true(json_object_get(st, "cancelled"));
	int rc;

	json_decref(st);
	if (!strcmp(cmd->type, "Place")) {
		if (placed)
			return host->reject(ctx, "order already placed");
		p = parse_obj(cmd->payload, cmd->payload_len);
		if (!json_is_string(json_object_get(p, "address"))) {
			json_decref(p);
			return host->reject(ctx,
			    "Place needs {\"address\": "
			    "\"...\"}");
		}
		rc = emit_json(ctx, "OrderPlaced", p);
		return rc;
	}
	if (!strcmp(cmd->type, "Cancel")) {
		if (!placed || cancelled)
			return host->reject(ctx, "no open order to cancel");
		return host->emit(ctx, "OrderCancelled", NULL, 0);
	}
	return host->reject(ctx, "unknown command (Place, Cancel)");
}

static int
shipment_apply(struct efp_ctx *ctx, const void *state, size_t len,
    const struct efp_event *ev)
{
	json_t *st = parse_obj(state, len), *p;

	if (!strcmp(ev->type, "ShipmentCreated"))
		json_object_set_new(st, "created", json_true());
	else if (!strcmp(ev->type, "ShipmentHeld")) {
		p = parse_obj(ev->payload, ev->payload_len);
		json_object_set_new(st, "held", json_true());
		json_object_set(st, "reason",
		    json_object_get(p, "reason") ?
		        json_object_get(p, "reason") :
		        json_null());
		json_decref(p);
	} else if (!strcmp(ev->type, "ShipmentReleased"))
		json_object_set_new(st, "held", json_false());
	return set_json(ctx, st);
}

static int
shipment_handle(struct efp_ctx *ctx, const void *state, size_t len,
    const struct efp_command *cmd)
{
	json_t *st = parse_obj(state, len), *p;
	int created = json_is_true(json_object_get(st, "created"));
	int held = json_is_true(json_object_get(st, "held"));
	char msg[300];

	snprintf(msg, sizeof(msg), "shipment %s is on hold: %s",
	    cmd->instance_id,
	    json_string_value(json_object_get(st, "reason")) ?
	        json_string_value(json_object_get(st, "reason")) :
	        "no reason given");
	json_decref(st);
	if (!strcmp(cmd->type, "Create")) {
		if (created)
			return host->reject(ctx, "shipment already created");
		if (held)
			return host->reject(ctx, msg);
		p = parse_obj(cmd->payload, cmd->payload_len);
		return emit_json(ctx, "ShipmentCreated", p);
	}
	if (!strcmp(cmd->type, "Hold")) {
		p = parse_obj(cmd->payload, cmd->payload_len);
		return emit_json(ctx, "ShipmentHeld", p);
	}
	if (!strcmp(cmd->type, "Release")) {
		if (!held)
			return host->reject(ctx, "shipment is not on hold");
		return host->emit(ctx, "ShipmentReleased", NULL, 0);
	}
	return host->reject(ctx, "unknown command (Create, Hold, Release)");
}

/* OrderPlaced of order X -> Create to shipment X. */
static int
shipping_react(struct efp_ctx *ctx, const struct efp_event *ev)
{
	json_t *p, *cmd;
	char *s;
	int rc;

	if (ev->aggregate_type == NULL ||
	    strcmp(ev->aggregate_type, "order") != 0 ||
	    strcmp(ev->type, "OrderPlaced") != 0)
		return EFP_OK;
	p = parse_obj(ev->payload, ev->payload_len);
	cmd = json_pack("{s:s,s:O?}", "order_id", ev->instance_id, "address",
	    json_object_get(p, "address"));
	json_decref(p);
	if (cmd == NULL || (s = json_dumps(cmd, JSON_COMPACT)) == NULL) {
		json_decref(cmd);
		host->fail(ctx, "cannot build the Create command");
		return EFP_ERROR;
	}
	json_decref(cmd);
	rc = host->send(ctx, "shipment", ev->instance_id, "Create", s,
	    strlen(s));
	free(s);
	return rc;
}

static const struct efp_aggregate order_aggregate = {
	.type = "order",
	.state_version = 1,
	.initial_state = "{}",
	.initial_len = 2,
	.apply = order_apply,
	.handle = order_handle,
};

static const struct efp_aggregate shipment_aggregate = {
	.type = "shipment",
	.state_version = 1,
	.initial_state = "{}",
	.initial_len = 2,
	.apply = shipment_apply,
	.handle = shipment_handle,
};

static const struct efp_manager order_shipping = {
	.name = "order_shipping",
	.react = shipping_react,
};

static int
orders_init(const struct efp_host *h, struct efp_registry *reg)
{
	int rc;

	host = h;
	if ((rc = h->register_aggregate(reg, &order_aggregate)) != EFP_OK ||
	    (rc = h->register_aggregate(reg, &shipment_aggregate)) != EFP_OK ||
	    (rc = h->register_manager(reg, &order_shipping)) != EFP_OK)
		return rc;
	return EFP_OK;
}

EFP_PLUGIN("orders", "1.0", orders_init, NULL);

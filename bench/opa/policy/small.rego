# A small realistic policy (the kind an OPA-Envoy user starts with): method
# and path rules, a bearer token on writes, an admin area, a denied-agent
# list. Every Check of the bench (a browser GET) is allowed by it.
package envoy.authz

import input.attributes.request.http as req

default allow := false

blocked_agents := {"sqlmap", "nikto", "masscan"}

agent_blocked if {
	some a in blocked_agents
	contains(lower(req.headers["user-agent"]), a)
}

allow if {
	req.method in {"GET", "HEAD"}
	not startswith(req.path, "/admin")
	not agent_blocked
}

allow if {
	req.method in {"POST", "PUT", "PATCH", "DELETE"}
	startswith(req.headers.authorization, "Bearer ")
	not startswith(req.path, "/admin")
	not agent_blocked
}

allow if {
	startswith(req.path, "/admin")
	req.headers["x-role"] == "admin"
	net.cidr_contains("10.0.0.0/8", input.attributes.source.address.socketAddress.address)
}

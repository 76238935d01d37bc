# The reference row's allow-all policy: OPA-Envoy's own cost per Check.
package envoy.authz

default allow := true

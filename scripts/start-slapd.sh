#!/usr/bin/env bash
# A throwaway OpenLDAP slapd for the `ldap` source's integration tests (tests/it/ldap*.rs,
# tests/it/compliance/ldap.rs). It never touches the system's own slapd: Debian is told not to
# configure one (debconf preseed), and our instance has its own cn=config (-F), database and
# TLS files under $HEADCOUNT_SLAPD_DIR, listening on loopback only.
#
#   ./scripts/start-slapd.sh install   # apt-get slapd + ldap-utils (non-interactive), if missing
#   ./scripts/start-slapd.sh start     # install if needed, then start; reuses a running instance
#   ./scripts/start-slapd.sh seed      # throw the instance away and start fresh with the seed data
#   ./scripts/start-slapd.sh stop
#
# Endpoints: ldap://127.0.0.1:18389 (StartTLS offered), ldaps://127.0.0.1:18636; the CA that
# signed the server certificate is $HEADCOUNT_SLAPD_DIR/tls/ca.pem. Admin (rootDN, no limits):
# cn=admin,dc=example,dc=com / secret. Every other bind gets a 500-entry size limit: an unpaged
# search stops at 500, a paged one (RFC 2696) reads everything, except uid=limited, whose paged
# searches also stop at 500 in total (a server that refuses paging past its limit).
#
# Seed data (suffix dc=example,dc=com):
#   ou=people   user00001..user00600 (bulk), alice bob carol dave erin (mail, names, title;
#               alice has two telephoneNumber values and a binary jpegPhoto), frank (no mail)
#   ou=groups   cn=helpdesk-agents (groupOfNames: alice bob carol frank + uid=ghost, a member
#               DN that points at nothing), cn=managers (dave), cn=support-unique
#               (groupOfUniqueNames: alice erin)
#   ou=services uid=reader / reader-secret, uid=limited / limited-secret (bind accounts)
#   ou=restricted  readable by nobody (disclose only): a search there is "insufficient access"
# Tests that modify data create their own OU with a unique name under the suffix.
set -euo pipefail

LDAP_PORT=${HEADCOUNT_SLAPD_PORT:-18389}
LDAPS_PORT=${HEADCOUNT_SLAPDS_PORT:-18636}
LDAP_DIR=${HEADCOUNT_SLAPD_DIR:-/tmp/headcount-it/slapd}
BULK_USERS=${HEADCOUNT_SLAPD_BULK_USERS:-600}
SUFFIX=dc=example,dc=com
ROOTDN=cn=admin,$SUFFIX
ROOTPW=secret
URI="ldap://127.0.0.1:$LDAP_PORT"
URIS="ldaps://127.0.0.1:$LDAPS_PORT"
PIDFILE="$LDAP_DIR/slapd.pid"
TLS="$LDAP_DIR/tls"

installed() { command -v slapd >/dev/null 2>&1 || [[ -x /usr/sbin/slapd ]]; }
slapd_bin() { command -v slapd 2>/dev/null || echo /usr/sbin/slapd; }
slapadd_bin() { command -v slapadd 2>/dev/null || echo /usr/sbin/slapadd; }

install() {
  if installed && command -v ldapadd >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1; then
    echo "slapd and ldap-utils already installed"
    return
  fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: installing slapd needs root (apt-get install slapd ldap-utils openssl)" >&2
    exit 1
  fi
  # No system instance or database is created; policy-rc.d / no systemd keeps it from starting.
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    slapd ldap-utils openssl >/dev/null
  echo "slapd and ldap-utils installed"
}

running() {
  [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null &&
    ldapsearch -x -H "$URI" -b "" -s base -LLL namingContexts >/dev/null 2>&1
}

stop() {
  if [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    local pid
    pid=$(cat "$PIDFILE")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$PIDFILE"
}

make_tls() {
  mkdir -p "$TLS"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=headcount test CA" \
    -keyout "$TLS/ca.key" -out "$TLS/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$TLS/server.key" -out "$TLS/server.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" >"$TLS/server.ext"
  openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial \
    -days 3650 -extfile "$TLS/server.ext" -out "$TLS/server.pem" 2>/dev/null
  chmod 600 "$TLS/server.key" "$TLS/ca.key"
}

config_ldif() {
  cat <<EOF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $PIDFILE
olcArgsFile: $LDAP_DIR/slapd.args
olcLogLevel: none
olcTLSCACertificateFile: $TLS/ca.pem
olcTLSCertificateFile: $TLS/server.pem
olcTLSCertificateKeyFile: $TLS/server.key

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: memberof

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/nis.ldif
include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcRootDN: cn=admin,cn=config
olcRootPW: $ROOTPW

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: $SUFFIX
olcDbDirectory: $LDAP_DIR/data
olcDbMaxSize: 1073741824
olcRootDN: $ROOTDN
olcRootPW: $ROOTPW
olcDbIndex: objectClass eq
olcDbIndex: uid,mail,cn eq,sub
olcDbIndex: member,uniqueMember eq
olcDbIndex: entryUUID eq
olcLimits: {0}dn.exact="uid=limited,ou=services,$SUFFIX" size.soft=500 size.hard=500 size.prtotal=500
olcLimits: {1}* size.soft=500 size.hard=500 size.prtotal=unlimited
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to dn.subtree="ou=restricted,$SUFFIX" by * disclose
olcAccess: {2}to * by * read

dn: olcOverlay={0}memberof,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {0}memberof
olcMemberOfRefInt: TRUE
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf
EOF
}

# The tree and the bulk users, loaded offline (slapadd -q: fast; overlays do not run offline).
base_ldif() {
  cat <<EOF
dn: $SUFFIX
objectClass: dcObject
objectClass: organization
dc: example
o: Example Corp

dn: ou=people,$SUFFIX
objectClass: organizationalUnit
ou: people

dn: ou=groups,$SUFFIX
objectClass: organizationalUnit
ou: groups

dn: ou=services,$SUFFIX
objectClass: organizationalUnit
ou: services

dn: uid=reader,ou=services,$SUFFIX
objectClass: account
objectClass: simpleSecurityObject
uid: reader
userPassword: reader-secret

dn: uid=limited,ou=services,$SUFFIX
objectClass: account
objectClass: simpleSecurityObject
uid: limited
userPassword: limited-secret

dn: ou=restricted,$SUFFIX
objectClass: organizationalUnit
ou: restricted

dn: uid=hidden,ou=restricted,$SUFFIX
objectClass: inetOrgPerson
uid: hidden
cn: Hidden Person
sn: Person

EOF
  awk -v n="$BULK_USERS" -v s="$SUFFIX" 'BEGIN{for(i=1;i<=n;i++){u=sprintf("user%05d",i);
    printf "dn: uid=%s,ou=people,%s\nobjectClass: inetOrgPerson\nuid: %s\ncn: User %05d\ngivenName: User\nsn: %05d\nmail: %s@example.com\nemployeeNumber: %d\n\n",u,s,u,i,i,u,i}}'
}

# Named people and groups, added online so that the memberof overlay sets memberOf.
seed_ldif() {
  local i=0 u
  for u in "alice Alice Anderson" "bob Bob Brown" "carol Carol Clark" "dave Dave Davis" "erin Erin Evans"; do
    set -- $u
    i=$((i + 1))
    cat <<EOF
dn: uid=$1,ou=people,$SUFFIX
objectClass: inetOrgPerson
uid: $1
cn: $2 $3
givenName: $2
sn: $3
displayName: $2 $3
mail: $1@example.com
telephoneNumber: +1 555 010$i
title: Engineer
employeeNumber: 100$i
userPassword: password
EOF
    if [[ $1 == alice ]]; then
      echo "telephoneNumber: +1 555 0199"
      echo "jpegPhoto:: /9j/4AAQSkZJRgABAQ=="
    fi
    echo
  done
  cat <<EOF
dn: uid=frank,ou=people,$SUFFIX
objectClass: inetOrgPerson
uid: frank
cn: Frank Foster
givenName: Frank
sn: Foster
title: Engineer

dn: cn=helpdesk-agents,ou=groups,$SUFFIX
objectClass: groupOfNames
cn: helpdesk-agents
description: Agents synced to the helpdesk
member: uid=alice,ou=people,$SUFFIX
member: uid=bob,ou=people,$SUFFIX
member: uid=carol,ou=people,$SUFFIX
member: uid=frank,ou=people,$SUFFIX
member: uid=ghost,ou=people,$SUFFIX

dn: cn=managers,ou=groups,$SUFFIX
objectClass: groupOfNames
cn: managers
member: uid=dave,ou=people,$SUFFIX

dn: cn=support-unique,ou=groups,$SUFFIX
objectClass: groupOfUniqueNames
cn: support-unique
uniqueMember: uid=alice,ou=people,$SUFFIX
uniqueMember: uid=erin,ou=people,$SUFFIX
EOF
}

fresh() {
  stop
  rm -rf "$LDAP_DIR"
  mkdir -p "$LDAP_DIR/slapd.d" "$LDAP_DIR/data"
  make_tls
  config_ldif >"$LDAP_DIR/config.ldif"
  "$(slapadd_bin)" -n0 -F "$LDAP_DIR/slapd.d" -l "$LDAP_DIR/config.ldif" >/dev/null
  base_ldif >"$LDAP_DIR/base.ldif"
  "$(slapadd_bin)" -q -F "$LDAP_DIR/slapd.d" -b "$SUFFIX" -l "$LDAP_DIR/base.ldif"
  "$(slapd_bin)" -h "$URI/ $URIS/" -F "$LDAP_DIR/slapd.d" # daemonizes; writes $PIDFILE
  for _ in $(seq 200); do running && break; sleep 0.05; done
  running || { echo "error: slapd did not come up on $URI" >&2; exit 1; }
  seed_ldif >"$LDAP_DIR/seed.ldif"
  ldapadd -x -H "$URI" -D "$ROOTDN" -w "$ROOTPW" -f "$LDAP_DIR/seed.ldif" >/dev/null
  echo "slapd up on $URI and $URIS (pid $(cat "$PIDFILE")), base $SUFFIX, CA $TLS/ca.pem"
}

case ${1:-start} in
  install) install ;;
  start)
    install
    if running; then
      echo "slapd already running on $URI (pid $(cat "$PIDFILE"))"
    else
      fresh
    fi
    ;;
  seed)
    install
    fresh
    ;;
  stop) stop ;;
  *)
    echo "usage: $0 install|start|seed|stop" >&2
    exit 1
    ;;
esac

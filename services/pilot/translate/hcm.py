"""The HTTP connection manager every generated HTTP filter chain uses.

One builder for sidecar outbound, inbound and (later) gateways, so the filter chain
is the same everywhere: fault → cors → router, Envoy's standard JSON access log with
%RESPONSE_FLAGS%, request ids, tracing sampling from the mesh config.
"""
from __future__ import annotations

from google.protobuf import any_pb2, struct_pb2, wrappers_pb2
from google.protobuf.duration_pb2 import Duration

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import config_source_pb2, protocol_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.type.v3 import percent_pb2

from isthmus.pilot.model.mesh import MeshConfig

HCM_FILTER = "envoy.filters.network.http_connection_manager"

# Envoy's standard fields (the default text format's, as JSON) plus the mesh's.
ACCESS_LOG_FIELDS = {
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration": "%DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "requested_server_name": "%REQUESTED_SERVER_NAME%",
    "route_name": "%ROUTE_NAME%",
}

TEXT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% '
    "%RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "
    '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% '
    '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" '
    '"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)


def pack(message) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(message)
    return a


def access_logs(mesh: MeshConfig) -> list[accesslog_pb2.AccessLog]:
    if not mesh.access_log_file:
        return []
    fmt = file_pb2.FileAccessLog(path=mesh.access_log_file)
    if mesh.access_log_encoding.upper() == "JSON":
        s = struct_pb2.Struct()
        s.update(ACCESS_LOG_FIELDS)
        fmt.log_format.json_format.CopyFrom(s)
    else:
        fmt.log_format.text_format_source.inline_string = TEXT_FORMAT
    return [accesslog_pb2.AccessLog(name="envoy.access_loggers.file", typed_config=pack(fmt))]


def http_filters() -> list[hcm_pb2.HttpFilter]:
    """fault → cors → router; routes configure fault and CORS per route."""
    return [
        hcm_pb2.HttpFilter(name="envoy.filters.http.fault", typed_config=pack(fault_pb2.HTTPFault())),
        hcm_pb2.HttpFilter(name="envoy.filters.http.cors", typed_config=pack(cors_pb2.Cors())),
        hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=pack(router_pb2.Router())),
    ]


def ads_config_source() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3)


def http_connection_manager(
    stat_prefix: str,
    mesh: MeshConfig,
    *,
    rds_name: str = "",
    route_config: route_pb2.RouteConfiguration | None = None,
    inbound: bool = False,
) -> hcm_pb2.HttpConnectionManager:
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix=stat_prefix,
        codec_type=hcm_pb2.HttpConnectionManager.AUTO,
        http_filters=http_filters(),
        access_log=access_logs(mesh),
        use_remote_address=wrappers_pb2.BoolValue(value=False),
        generate_request_id=wrappers_pb2.BoolValue(value=True),
        normalize_path=wrappers_pb2.BoolValue(value=True),
        path_with_escaped_slashes_action=hcm_pb2.HttpConnectionManager.KEEP_UNCHANGED,
        stream_idle_timeout=Duration(seconds=0),
        http_protocol_options=protocol_pb2.Http1ProtocolOptions(allow_absolute_url=wrappers_pb2.BoolValue(value=True)),
        tracing=hcm_pb2.HttpConnectionManager.Tracing(
            random_sampling=percent_pb2.Percent(value=mesh.tracing_sampling),
            client_sampling=percent_pb2.Percent(value=100.0),
            overall_sampling=percent_pb2.Percent(value=100.0),
        ),
    )
    hcm.common_http_protocol_options.max_headers_count.value = 100
    # WebSocket through the mesh, as Istio enables it on every HTTP connection manager.
    hcm.upgrade_configs.add(upgrade_type="websocket")
    if inbound:
        hcm.forward_client_cert_details = hcm_pb2.HttpConnectionManager.APPEND_FORWARD
        hcm.set_current_client_cert_details.uri = True
    else:
        hcm.forward_client_cert_details = hcm_pb2.HttpConnectionManager.SANITIZE_SET
        hcm.set_current_client_cert_details.uri = True
    if route_config is not None:
        hcm.route_config.CopyFrom(route_config)
    else:
        hcm.rds.route_config_name = rds_name
        hcm.rds.config_source.CopyFrom(ads_config_source())
    return hcm


def hcm_filter(hcm: hcm_pb2.HttpConnectionManager) -> listener_components_pb2.Filter:
    return listener_components_pb2.Filter(name=HCM_FILTER, typed_config=pack(hcm))

import pytest

from tests.e2e.harness import Stack


@pytest.fixture
def stack(amqp_url, tmp_path, request):
    """All three services as processes on a fresh vhost and fresh SQLite files."""
    s = Stack(amqp_url, tmp_path)
    s.setup()
    yield s
    s.close()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        for service in ("intake", "routing", "notify"):
            print(f"----- {service} log -----\n{s.log(service)[-4000:]}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, "rep_" + report.when, report)
    return report

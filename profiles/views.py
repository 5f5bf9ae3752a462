from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    # Reserved for the settings page (web UI issue); error responses already link here.
    return HttpResponse("Profile settings")
